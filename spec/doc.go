// Package spec is certops' specification language: the kinds a certificate
// repository holds (Config, Issuer, Certificate, and cert-manager's
// Certificate, Issuer and ClusterIssuer, which map onto them), their strict
// loading from an fs.FS, their defaults and validation, the policy that says
// who may ask for what, the spec hash, the clear-text annotations an encrypted
// Secret carries, and the renewal decision made from them.
//
// It is pure: it reads only through the fs.FS it is given, never the network,
// a cluster or a key, and imports no other package of certops. A load never
// fails as a whole: every problem in the repository is collected with its
// file, line, column and field path, and a document with a problem is left
// out of the result so that callers act only on what is valid.
//
// Values returned by Load are not modified afterwards and are safe to read
// from several goroutines. LoadCache and ObservedCache carry what was
// decoded from one commit to the next, keyed by path and content hash (an
// fs.FS that is a ContentHasher, such as a Git tree), hold only the files of
// the last tree read, hand out copies, and are safe for concurrent use.
package spec
