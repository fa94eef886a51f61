// Package ca is the ca issuer: it signs CSRs with a CA keypair that the
// daemon keeps SOPS-encrypted in the repository and hands over decrypted
// (this package never reads files or decrypts anything).
//
// It writes CRL distribution points, OCSP servers and issuing-certificate
// URLs when configured, and refuses — permanently, with a clear error — to
// sign beyond the CA's own notAfter or for names outside the CA's name
// constraints. It makes no network calls and is safe for concurrent use.
package ca
