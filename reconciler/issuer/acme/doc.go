// Package acme is the ACME issuer (RFC 8555), on go-acme/lego v5: Let's
// Encrypt, any other ACME CA, Pebble in tests.
//
// The reconciler's CSR is sent as is (lego's ObtainForCSR), so the
// certificate key never leaves certops. The account key is generated once
// and kept through the AccountStore the daemon supplies (SOPS-encrypted in
// the repository, one per issuer and server); this package never touches
// disk. Registration agrees to the terms of service only when configured to,
// with optional external account binding.
//
// Challenges: HTTP-01 through HTTP01Handler, certops' own challenge
// listener (mount it in the daemon's mux or serve it on an address), and
// DNS-01 through any lego DNS provider (see the dnsproviders package for the
// ones certops builds in, chosen by name).
//
// ARI (RFC 9773): after issuance the CA's suggested renewal window is
// returned as Result.RenewalHint, and a renewal sends `replaces` with the
// previous certificate's ARI identifier. Orders always name the configured
// profile; a preferred chain is honoured when the CA offers it.
//
// Errors are classified: rate limits become retry-after (the server's
// Retry-After, else one hour), server and network trouble transient, bad
// requests and refused identifiers permanent. Every HTTP request to the CA
// is reported to Config.OnRequest for a metric.
//
// An Issuer is safe for concurrent use. lego's DNS-01 resolver settings are
// process-global (dns01.SetDefaultClient): Config.DNS01Resolvers changes
// them for every issuer in the process.
package acme
