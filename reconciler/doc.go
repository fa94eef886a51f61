// Package reconciler is certops' loop. One pass takes the desired state from
// one commit of the certificate repository (specs, loaded and validated by
// package spec), the observed state from the clear-text annotations of the
// encrypted Secret files in that commit, plans each certificate with
// cert-manager's ordered trigger checks, issues what is due through the
// pluggable issuers (package reconciler/issuer and its backends, wired by the
// caller), encrypts the keypairs (SOPS), writes one commit with a trailer
// block per certificate, pushes it, and applies the Secrets to the clusters.
//
// It never deletes or overwrites a good certificate because of bad input: an
// invalid spec is reported and skipped (its Secret is held), a file that
// fails encryption or decryption is left as it is, a failed push keeps the
// commit for the next pass, and a failing certificate backs off (1h doubling
// to 32h, reset by a spec change, persisted across restarts) without
// delaying any other.
//
// Orders placed through a backend with remote orders (issuer.Resumer, that
// is ACME) are journalled in the state directory, the key and CSR sealed to
// the daemon's own age recipients (Options.Journal), so that a crash after
// the CA issued resumes the order instead of ordering again; see
// journal.go. The state directory never holds a plaintext key.
//
// Notifiers (Options.Notify) get an Event per certificate issued, renewed,
// reissued or removed once its commit is pushed, and per new failure; each
// is called from its own goroutine through a bounded queue, so a slow one
// never delays a pass. Close drains the queues.
//
// It is the only package that combines gitsource, sops, spec and the
// issuers; it never names a concrete backend. A Reconciler runs one pass at
// a time; its status accessors are safe for concurrent use.
package reconciler
