// Package selfsigned is the selfSigned issuer: it signs a certificate with
// the certificate's own private key, typically to bootstrap a root CA that
// the ca issuer then uses.
//
// It implements issuer.SelfSigner; its plain Sign, which has no key, fails
// permanently. It makes no network calls, keeps no state and is safe for
// concurrent use.
package selfsigned
