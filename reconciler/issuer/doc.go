// Package issuer is the seam between the reconciler and the certificate
// authorities it obtains certificates from. The reconciler owns this package:
// it defines what a backend must do (Issuer), what it is given (Request) and
// what it returns (Result), and the retry vocabulary of errors (Class).
//
// The reconciler owns every private key. A backend receives a certificate
// signing request plus the requested lifetime and usages, and returns the
// chain, leaf first. Self-signing is the one case that needs the key; it is
// the optional SelfSigner capability, discovered with a type assertion.
// Backends whose orders live at the CA (ACME) implement Resumer: they report
// each order's URL through Request.OnOrder and can pick an order up again
// after a crash, so that the caller never orders twice for one key.
//
// The package also generates keys (KeySpec) and CSRs (Template) with the
// field names and defaults of cert-manager's Certificate, parses existing
// PEM keys back (rotationPolicy: Never), and turns a Request into an x509
// template for the backends that sign locally (CertificateTemplate).
//
// It does not decide when to renew, does not read or write files and does not
// know any backend. Backends live in subpackages (selfsigned, ca, acme, vault,
// exec) and import nothing of certops but this package; issuertest is the
// conformance suite each of them runs.
//
// Everything here is safe for concurrent use; an Issuer implementation must
// be too.
package issuer
