// Package dnsproviders is certops' registry of lego DNS-01 providers,
// chosen by name in an ACME issuer's spec. lego's all-providers package
// cannot be built here and would link every provider SDK; this registry
// imports a chosen set one by one. `certops issuers providers` prints List.
//
// Credentials never come from the repository: every provider reads them
// from environment variables, or from files named by the same variables
// with a _FILE suffix (lego's convention).
//
// Names are lego's (dnsupdate, gcloud, acmedns, ...) plus the names
// cert-manager uses (rfc2136, clouddns, acme-dns, ...) as aliases.
//
// It is safe for concurrent use; New builds a fresh provider per call.
package dnsproviders
