// Package exec is the exec issuer: it plugs in any CA that has a command
// line. For every request it runs the configured command with the CSR PEM on
// stdin and reads the certificate chain PEM, leaf first, from stdout.
//
// The command runs without a shell, in a clean environment (PATH, the
// configured variables and the CERTOPS_* request variables below, nothing
// inherited from the daemon), in its own process group, and is killed with
// its children when the timeout passes or the context is cancelled.
//
// Request variables: CERTOPS_CERT_NAME (for logs), CERTOPS_DURATION_SECONDS,
// CERTOPS_DURATION_DAYS (rounded up, for `openssl x509 -days`),
// CERTOPS_IS_CA ("true"/"false"), CERTOPS_KEY_USAGES and
// CERTOPS_EXT_KEY_USAGES (comma-separated cert-manager names).
//
// Exit status (sysexits.h): 75 (EX_TEMPFAIL) is transient; 64 (EX_USAGE),
// 65 (EX_DATAERR), 77 (EX_NOPERM) and 78 (EX_CONFIG) are permanent; any
// other failure, and a timeout, is transient. Only the last line of stderr,
// truncated, appears in errors: commands must not print secrets there.
//
// It is safe for concurrent use; each Sign runs its own process.
package exec
