// Package sops encrypts and decrypts the Secret manifests certops commits to
// Git, in process, with the github.com/getsops/sops/v3 library. What it
// writes is an ordinary SOPS YAML file: the sops CLI, Flux's
// kustomize-controller and KSOPS decrypt it, and it decrypts what they write.
//
// A manifest keeps apiVersion, kind, metadata and type in clear text and has
// data and stringData encrypted (encrypted_regex ^(data|stringData)$), so the
// reconciler can plan from the clear-text annotations without a key.
//
// Who can read a file is decided by the repository's .sops.yaml creation
// rules, found the way the sops CLI finds them: the nearest .sops.yaml in the
// file's folder or above it, and in it the first rule whose path_regex
// matches the file's path relative to that .sops.yaml. Every recipient the
// rule names must belong to the set the daemon was started with (a Codec's
// trusted recipients): a rule that widens the set is refused with an
// *UntrustedRecipientError, so a merged pull request cannot send future
// private keys to a new reader. A rule may name fewer recipients.
//
// Supported recipients: age X25519 (and age post-quantum hybrid) recipients
// for encryption and decryption; OpenPGP public keys for encryption only,
// done in process with github.com/ProtonMail/go-crypto from the armored public
// key given to the Codec (no gpg binary, no agent, no keyring on disk).
// Cloud KMS recipients (AWS, GCP, Azure, Vault, HuaweiCloud) and age plugins
// are refused: the daemon cannot pin or reach them.
//
// Decryption uses only the age identities given to the Codec. The sops
// library's own fallbacks (SOPS_AGE_KEY, ~/.config/sops/age/keys.txt, gpg)
// are never reached: the environment is read only by IdentitiesFromEnv,
// which the command calls explicitly. The MAC is always verified; a file
// changed outside SOPS is an *IntegrityError naming the file.
//
// Decrypt returns only a single v1 Secret document: the output feeds what
// is applied to clusters, and any holder of a recipient key can write a
// file that verifies.
//
// Stable output and re-keying: Update returns the current file unchanged
// when its plaintext and recipients are unchanged. Rekey re-encrypts every
// file whose recipients differ from its rule, all or nothing, for one
// commit; it reads only the clear-text sops metadata of files that need no
// change, so the daemon can call it on every pass to follow rule changes.
//
// What the SOPS MAC does not cover: it hashes the values of the document in
// order, not the key names, so renaming a clear-text key while keeping its
// value (and its place) is not detected by any SOPS implementation. Changing
// a value, moving an encrypted value, or adding or removing a key is.
//
// The package never writes files and never logs key material. A Codec is
// immutable after New and safe for concurrent use.
package sops
