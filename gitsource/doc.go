// Package gitsource keeps a persistent clone of one branch of a Git remote,
// hands out the files of a commit, and writes, signs and pushes certops'
// own commits back.
//
// What it does:
//   - Remotes over HTTPS (basic auth, a token as password, a bearer token,
//     an extra CA bundle, a client certificate), SSH (private key with an
//     optional passphrase; known_hosts is required and an unknown or changed
//     host key is refused) and file://. Credentials come from a directory
//     laid out like a Flux Git auth Secret (LoadAuth).
//   - A clone in a cache directory that survives restarts. The first fetch
//     is shallow (one commit); later ones are incremental, bringing only
//     the objects that changed; all are single-branch. Poll is one
//     ls-remote; Sync fetches only when the tip moved.
//   - Files gives an io/fs view of a commit's tree, never a work tree (the
//     clone is bare), so a pass works on exactly one commit.
//   - Commit writes one commit from a set of owned paths: it builds the tree
//     objects on the changed paths only, so its cost follows the size of
//     the change, not of the repository. No change, no commit.
//   - Commits are signed with OpenPGP or SSH (SSHSIG, namespace "git") keys;
//     the real git CLI accepts both.
//   - Push never forces. When the remote moved, it fetches the new tip,
//     re-applies the same changes and pushes again, a bounded number of
//     times with jittered backoff. Unpushed commits stay in the cache across
//     restarts (Pending) and are re-applied on the new tip by Sync or Push.
//   - With a Verifier, a tip that is unsigned or signed by an untrusted key
//     is refused (ErrVerification) and the last verified commit is kept.
//   - Errors are *Error values whose kind matches ErrNotFound, ErrAuth,
//     ErrHostKey, ErrNonFastForward or ErrVerification with errors.Is. No
//     error or log line holds URL user-info, passwords or tokens.
//
// What it does not do: it knows nothing of certificates or of which files
// certops owns; it keeps no history older than its first fetch; it
// does not merge (owned files are re-applied as they are, other files are
// taken from the remote); it does not handle submodules or LFS. file://
// remotes and the tests need the git binaries on PATH; HTTP(S) and SSH do
// not.
//
// Concurrency: a Repo is safe for concurrent use; its methods run one at a
// time. The fs.FS values Files returns are safe for concurrent use and stay
// valid while the Repo is open. Two processes must not share a cache
// directory.
package gitsource
