// Package history reads a certificate's life from Git alone: every issue,
// re-issue, renewal and removal certops recorded as commit trailers
// (Certificate, Serial, Not-After, Issuer, Reason), each paired with the
// commit that caused it — the last change of the certificate's spec file at
// or before the event, found the way `git log -1 <event> -- <spec file>`
// finds it (history simplification: a merge whose parent has the same file
// is passed through to that parent).
//
// It reads commit messages, the clear-text head of the Secret files a
// certops commit touched (the certops.dev/certificate and
// certops.dev/spec-file annotations) and tree hashes; it decrypts nothing
// and never reads a private key. It does not fetch: the caller passes a
// repository (a clone, possibly shallow; a shallow one is reported as
// truncated).
//
// Read is safe for concurrent use on distinct repositories; a go-git
// repository shared between goroutines must itself be safe for that.
package history
