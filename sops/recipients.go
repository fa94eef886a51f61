package sops

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
)

// Kind is the kind of a recipient, named as in .sops.yaml.
type Kind string

// The recipient kinds this package can pin.
const (
	KindAge Kind = "age"
	KindPGP Kind = "pgp"
)

// Recipient is one reader of encrypted files: an age recipient
// ("age1...") or an OpenPGP key named by its upper-case hex fingerprint.
// Recipients are comparable; two spellings of the same age key compare equal
// once parsed.
type Recipient struct {
	Kind Kind
	ID   string
}

func (r Recipient) String() string { return string(r.Kind) + ":" + r.ID }

// ParseAgeRecipient parses an age recipient: X25519 ("age1..."), post-quantum
// hybrid ("age1pq1...") or SSH ("ssh-ed25519 ...", "ssh-rsa ..."). Plugin
// recipients are refused: they run external programs.
func ParseAgeRecipient(s string) (Recipient, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-"), strings.HasPrefix(s, "AGE-PLUGIN-"):
		// Never quote it: it is a private key pasted where a public one belongs.
		return Recipient{}, fmt.Errorf("sops: an age identity (private key) was given where a recipient belongs: %w", ErrUnsupportedRecipient)
	case strings.HasPrefix(s, "age1pq1"):
		r, err := age.ParseHybridRecipient(s)
		if err != nil {
			return Recipient{}, fmt.Errorf("sops: age recipient %q: %w", s, err)
		}
		return Recipient{Kind: KindAge, ID: r.String()}, nil
	case strings.HasPrefix(strings.ToLower(s), "age1") && strings.Count(s, "1") > 1:
		return Recipient{}, fmt.Errorf("sops: age recipient %q: %w: age plugins are not supported", s, ErrUnsupportedRecipient)
	case strings.HasPrefix(strings.ToLower(s), "age1"):
		r, err := age.ParseX25519Recipient(strings.ToLower(s))
		if err != nil {
			return Recipient{}, fmt.Errorf("sops: age recipient %q: %w", s, err)
		}
		return Recipient{Kind: KindAge, ID: r.String()}, nil
	case strings.HasPrefix(s, "ssh-"):
		// Validated by the sops library's own parser when encrypting; the
		// canonical form is the trimmed authorized_keys line.
		return Recipient{Kind: KindAge, ID: s}, nil
	}
	return Recipient{}, fmt.Errorf("sops: age recipient %q: %w: not an age or ssh recipient", s, ErrUnsupportedRecipient)
}

// normalizeFingerprint returns the upper-case hex form sops writes.
func normalizeFingerprint(s string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
}

// PGPKey is an OpenPGP public key the daemon may encrypt to.
type PGPKey struct {
	Recipient Recipient
	entity    *openpgp.Entity
}

// ParsePGPPublicKey reads one armored (or binary) OpenPGP public key. The
// key is used in process: no gpg binary, agent or keyring is involved.
func ParsePGPPublicKey(key []byte) (PGPKey, error) {
	var list openpgp.EntityList
	var err error
	if bytes.Contains(key, []byte("-----BEGIN PGP")) {
		list, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(key))
	} else {
		list, err = openpgp.ReadKeyRing(bytes.NewReader(key))
	}
	if err != nil {
		return PGPKey{}, fmt.Errorf("sops: openpgp public key: %w", err)
	}
	if len(list) != 1 {
		return PGPKey{}, fmt.Errorf("sops: openpgp public key: want exactly one key, got %d", len(list))
	}
	e := list[0]
	if e.PrivateKey != nil {
		return PGPKey{}, fmt.Errorf("sops: openpgp public key: got a private key; give the daemon the public key only")
	}
	fp := strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
	return PGPKey{Recipient: Recipient{Kind: KindPGP, ID: fp}, entity: e}, nil
}

// Trust is the pinned set of recipients the daemon was started with.
type Trust struct {
	age map[Recipient]bool
	pgp map[string]*openpgp.Entity // by fingerprint
}

// NewTrust builds the pinned set from age recipients (see ParseAgeRecipient)
// and OpenPGP public keys. It needs at least one recipient.
func NewTrust(ageRecipients []string, pgpKeys []PGPKey) (*Trust, error) {
	t := &Trust{age: map[Recipient]bool{}, pgp: map[string]*openpgp.Entity{}}
	for _, s := range ageRecipients {
		r, err := ParseAgeRecipient(s)
		if err != nil {
			return nil, err
		}
		t.age[r] = true
	}
	for _, k := range pgpKeys {
		if k.entity == nil {
			return nil, fmt.Errorf("sops: openpgp key %s was not parsed with ParsePGPPublicKey", k.Recipient.ID)
		}
		t.pgp[k.Recipient.ID] = k.entity
	}
	if len(t.age)+len(t.pgp) == 0 {
		return nil, fmt.Errorf("sops: trusted recipient set is empty")
	}
	return t, nil
}

// Has reports whether r belongs to the pinned set.
func (t *Trust) Has(r Recipient) bool {
	switch r.Kind {
	case KindAge:
		return t.age[r]
	case KindPGP:
		return t.pgp[r.ID] != nil
	}
	return false
}

// Recipients lists the pinned set, sorted.
func (t *Trust) Recipients() []Recipient {
	var out []Recipient
	for r := range t.age {
		out = append(out, r)
	}
	for fp := range t.pgp {
		out = append(out, Recipient{Kind: KindPGP, ID: fp})
	}
	sortRecipients(out)
	return out
}

func sortRecipients(rs []Recipient) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Kind != rs[j].Kind {
			return rs[i].Kind < rs[j].Kind
		}
		return rs[i].ID < rs[j].ID
	})
}
