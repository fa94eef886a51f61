package sops

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, matched with errors.Is. Errors returned by this package
// wrap one of them, usually inside a *FileError that names the file.
var (
	// ErrIntegrity: the file was changed outside SOPS (MAC mismatch, a value
	// that does not decrypt, a truncated file). Never apply such a file.
	ErrIntegrity = errors.New("file was changed outside sops")
	// ErrNotEncrypted: the input has no sops metadata.
	ErrNotEncrypted = errors.New("no sops metadata: not encrypted, or truncated")
	// ErrMalformed: the input is not a single YAML document of the expected shape.
	ErrMalformed = errors.New("malformed document")
	// ErrUnsupportedVersion: the sops version field is missing or not 3.x.
	ErrUnsupportedVersion = errors.New("unsupported sops version")
	// ErrNoIdentity: none of the codec's age identities opens the data key.
	ErrNoIdentity = errors.New("no identity can decrypt the data key")
	// ErrConfig: a .sops.yaml does not parse or a rule is invalid.
	ErrConfig = errors.New("invalid .sops.yaml")
	// ErrNoRule: no .sops.yaml, or no creation rule matches the file.
	ErrNoRule = errors.New("no matching creation rule")
	// ErrNoRecipients: the matching rule names no recipient.
	ErrNoRecipients = errors.New("creation rule has no recipients")
	// ErrUntrustedRecipient: the rule names a recipient outside the pinned set.
	ErrUntrustedRecipient = errors.New("recipient is not trusted")
	// ErrUnsupportedRecipient: the rule names a recipient kind this package cannot pin or use.
	ErrUnsupportedRecipient = errors.New("unsupported recipient")
	// ErrClearTextKey: the plaintext carries private key material outside data/stringData.
	ErrClearTextKey = errors.New("private key material outside data/stringData would stay in clear text")
)

// FileError names the file and the operation that failed. It never carries
// plaintext.
type FileError struct {
	Op   string // "encrypt", "decrypt", "update", "rekey", "recipients"
	Path string
	Err  error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("sops: %s %s: %v", e.Op, e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// IntegrityError reports a file that fails verification. It wraps ErrIntegrity.
type IntegrityError struct {
	Reason string
}

func (e *IntegrityError) Error() string {
	return ErrIntegrity.Error() + ": " + e.Reason
}

func (e *IntegrityError) Unwrap() error { return ErrIntegrity }

// UntrustedRecipientError is returned when a .sops.yaml rule names a
// recipient outside the codec's trusted set. The caller must refuse to write
// (and should report the config file to a human). It wraps
// ErrUntrustedRecipient.
type UntrustedRecipientError struct {
	Config     string      // path of the .sops.yaml inside the repository
	Rule       int         // index of the creation rule in that file
	Recipients []Recipient // the recipients outside the trusted set
}

func (e *UntrustedRecipientError) Error() string {
	ids := make([]string, len(e.Recipients))
	for i, r := range e.Recipients {
		ids[i] = r.String()
	}
	return fmt.Sprintf("%v: %s creation_rules[%d] adds %s; restart the daemon with the new recipient trusted to allow it",
		ErrUntrustedRecipient, e.Config, e.Rule, strings.Join(ids, ", "))
}

func (e *UntrustedRecipientError) Unwrap() error { return ErrUntrustedRecipient }
