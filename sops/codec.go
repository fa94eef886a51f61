package sops

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/ProtonMail/go-crypto/openpgp"
	pgparmor "github.com/ProtonMail/go-crypto/openpgp/armor"
	gosops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	sopspgp "github.com/getsops/sops/v3/pgp"
	"github.com/getsops/sops/v3/shamir"
	"github.com/getsops/sops/v3/stores"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"golang.org/x/crypto/chacha20poly1305"
)

// yamlIndent is the indentation of written files: two spaces, the
// Kubernetes convention, so diffs of the clear-text metadata read naturally.
const yamlIndent = 2

// libraryVersion is the version of github.com/getsops/sops/v3 in go.mod,
// written to each file's sops.version as the CLI does. Its own package
// (sops/v3/version) would link the CLI's dependencies; a test keeps this
// constant equal to go.mod.
const libraryVersion = "3.13.3"

// Options configure a Codec.
type Options struct {
	// Trust is the pinned recipient set (required).
	Trust *Trust
	// Identities decrypt files. A codec without identities can only
	// encrypt; Decrypt, Update of an existing file and Rekey fail with
	// ErrNoIdentity.
	Identities Identities
	// Logger receives debug lines naming files and recipients, never key
	// material. Nil discards.
	Logger *slog.Logger
	// Now stamps sops' lastmodified field. Nil means time.Now.
	Now func() time.Time
}

// Codec encrypts and decrypts Secret manifests. It is safe for concurrent use.
type Codec struct {
	trust *Trust
	ids   Identities
	log   *slog.Logger
	now   func() time.Time

	configs configCache
}

// New returns a Codec for the pinned recipient set and identities.
func New(o Options) (*Codec, error) {
	if o.Trust == nil {
		return nil, errors.New("sops: no trusted recipient set")
	}
	c := &Codec{trust: o.Trust, ids: append(Identities(nil), o.Identities...), log: o.Logger, now: o.Now}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

func newStore() *sopsyaml.Store {
	return sopsyaml.NewStore(&config.YAMLStoreConfig{Indent: yamlIndent})
}

// Encrypt encrypts the plaintext Secret manifest plain for file (a
// slash-separated path in repo, the repository at one commit) to the
// recipients of its .sops.yaml creation rule. Each call draws a new data key
// and IVs: use Update to keep unchanged files byte-for-byte.
func (c *Codec) Encrypt(repo fs.FS, file string, plain []byte) ([]byte, error) {
	rule, err := c.ruleFor(repo, file)
	if err != nil {
		return nil, &FileError{Op: "encrypt", Path: file, Err: err}
	}
	out, err := c.encryptTo(rule, plain)
	if err != nil {
		return nil, &FileError{Op: "encrypt", Path: file, Err: err}
	}
	c.log.Debug("encrypted", "file", file, "config", rule.Config, "recipients", countRecipients(rule.Groups))
	return out, nil
}

// Decrypt decrypts an encrypted manifest and verifies its MAC. file only
// names the input in errors. Any change made outside SOPS gives an
// *IntegrityError (errors.Is(err, ErrIntegrity)).
func (c *Codec) Decrypt(file string, ciphertext []byte) ([]byte, error) {
	plain, _, err := c.open(ciphertext)
	if err != nil {
		return nil, &FileError{Op: "decrypt", Path: file, Err: err}
	}
	return plain, nil
}

// Update returns the encrypted form of plain for file. When old (the
// file's current content, or nil when it does not exist) decrypts to the
// same document and is encrypted to the recipients the rule names now, old
// is returned unchanged and changed is false: re-encrypting would draw new
// IVs and make a commit that means nothing. A changed plaintext or changed
// recipients give a fresh encryption and changed true. An old file that
// fails verification is an error (errors.Is(err, ErrIntegrity)); the caller
// decides whether to overwrite it with Encrypt.
func (c *Codec) Update(repo fs.FS, file string, old, plain []byte) (out []byte, changed bool, err error) {
	branches, err := parseSecret(plain)
	if err != nil {
		return nil, false, &FileError{Op: "update", Path: file, Err: err}
	}
	return c.update(repo, file, old, branches)
}

// NeedsRekey reports whether the encrypted file's recipients differ from
// those its creation rule names now. It reads only the clear-text sops
// metadata; it does not decrypt.
func (c *Codec) NeedsRekey(repo fs.FS, file string, ciphertext []byte) (bool, error) {
	rule, err := c.ruleFor(repo, file)
	if err != nil {
		return false, &FileError{Op: "rekey", Path: file, Err: err}
	}
	groups, threshold, err := FileRecipients(ciphertext)
	if err != nil {
		return false, &FileError{Op: "rekey", Path: file, Err: err}
	}
	return !sameRecipients(groups, threshold, rule), nil
}

// Rekey re-encrypts, to the recipients their rules name now, every file of
// files (repository path → current content) whose recipients differ. It
// returns only the files that changed, for one commit. It is all or
// nothing: if any file fails (a bad rule, an untrusted recipient, a file
// that does not verify), it returns every failure joined and no file, so
// the repository is never left half re-keyed.
func (c *Codec) Rekey(ctx context.Context, repo fs.FS, files map[string][]byte) (map[string][]byte, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	out := map[string][]byte{}
	var errs []error
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("sops: rekey: %w", err)
		}
		need, err := c.NeedsRekey(repo, name, files[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !need {
			continue
		}
		plain, err := c.Decrypt(name, files[name])
		if err != nil {
			errs = append(errs, &FileError{Op: "rekey", Path: name, Err: errors.Unwrap(err)})
			continue
		}
		rule, err := c.ruleFor(repo, name)
		if err != nil {
			errs = append(errs, &FileError{Op: "rekey", Path: name, Err: err})
			continue
		}
		enc, err := c.encryptTo(rule, plain)
		if err != nil {
			errs = append(errs, &FileError{Op: "rekey", Path: name, Err: err})
			continue
		}
		out[name] = enc
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.log.Info("rekeyed", "files", len(out), "checked", len(files))
	return out, nil
}

// FileRecipients lists the recipients an encrypted file is encrypted to, by
// key group, and its Shamir threshold, from the clear-text sops metadata
// (not verified: the MAC does not cover the key list).
func FileRecipients(ciphertext []byte) ([][]Recipient, int, error) {
	tree, err := load(ciphertext)
	if err != nil {
		return nil, 0, err
	}
	return metadataGroups(tree.Metadata), tree.Metadata.ShamirThreshold, nil
}

func metadataGroups(md gosops.Metadata) [][]Recipient {
	groups := make([][]Recipient, 0, len(md.KeyGroups))
	for _, g := range md.KeyGroups {
		var rs []Recipient
		for _, k := range g {
			rs = append(rs, recipientOf(k))
		}
		groups = append(groups, rs)
	}
	return groups
}

func recipientOf(k keys.MasterKey) Recipient {
	switch k := k.(type) {
	case *sopsage.MasterKey:
		if r, err := ParseAgeRecipient(k.Recipient); err == nil {
			return r
		}
		return Recipient{Kind: KindAge, ID: k.Recipient}
	case *sopspgp.MasterKey:
		return Recipient{Kind: KindPGP, ID: normalizeFingerprint(k.Fingerprint)}
	}
	return Recipient{Kind: Kind(k.TypeToIdentifier()), ID: k.ToString()}
}

func sameRecipients(groups [][]Recipient, threshold int, rule Rule) bool {
	norm := func(gs [][]Recipient) []string {
		out := make([]string, len(gs))
		for i, g := range gs {
			g = append([]Recipient(nil), g...)
			sortRecipients(g)
			ids := make([]string, len(g))
			for j, r := range g {
				ids[j] = r.String()
			}
			out[i] = strings.Join(ids, ",")
		}
		sort.Strings(out)
		return out
	}
	a, b := norm(groups), norm(rule.Groups)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	effective := func(t, n int) int {
		if n <= 1 {
			return 0
		}
		if t == 0 {
			return n
		}
		return t
	}
	return effective(threshold, len(groups)) == effective(rule.ShamirThreshold, len(rule.Groups))
}

func countRecipients(groups [][]Recipient) int {
	n := 0
	for _, g := range groups {
		n += len(g)
	}
	return n
}

// parsePlain parses a plaintext manifest of one YAML document.
func parsePlain(plain []byte) (gosops.TreeBranches, error) {
	branches, err := newStore().LoadPlainFile(plain)
	if err != nil {
		// The parser quotes input; the input holds private keys.
		return nil, fmt.Errorf("%w: plaintext is not YAML", ErrMalformed)
	}
	if len(branches) != 1 {
		return nil, fmt.Errorf("%w: want one YAML document, got %d", ErrMalformed, len(branches))
	}
	return branches, nil
}

// parseSecret is parsePlain of a v1 Secret (checkSecret).
func parseSecret(plain []byte) (gosops.TreeBranches, error) {
	branches, err := parsePlain(plain)
	if err != nil {
		return nil, err
	}
	if err := checkSecret(branches[0]); err != nil {
		return nil, err
	}
	return branches, nil
}

// allowedTopLevel are the fields of a v1 Secret. Anything else would stay
// in clear text, so it is refused rather than written.
var allowedTopLevel = map[string]bool{
	"apiVersion": true, "kind": true, "metadata": true, "type": true,
	"data": true, "stringData": true, "immutable": true,
}

func checkSecret(branch gosops.TreeBranch) error {
	var kind, apiVersion string
	for _, item := range branch {
		k, ok := item.Key.(string)
		if !ok {
			if _, isComment := item.Key.(gosops.Comment); isComment {
				continue
			}
			return fmt.Errorf("%w: top-level key of type %T", ErrMalformed, item.Key)
		}
		if k == "sops" {
			return fmt.Errorf("%w: the plaintext is already sops-encrypted", ErrMalformed)
		}
		if !allowedTopLevel[k] {
			return fmt.Errorf("%w: field %q is not part of a v1 Secret", ErrMalformed, k)
		}
		switch k {
		case "kind":
			kind, _ = item.Value.(string)
		case "apiVersion":
			apiVersion, _ = item.Value.(string)
		case "data", "stringData":
			continue
		}
		if containsPrivateKey(item.Value) {
			return fmt.Errorf("%w (field %s)", ErrClearTextKey, k)
		}
	}
	if kind != "Secret" || apiVersion != "v1" {
		return fmt.Errorf("%w: want apiVersion v1, kind Secret; got %q, %q", ErrMalformed, apiVersion, kind)
	}
	return nil
}

func containsPrivateKey(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.Contains(v, "PRIVATE KEY")
	case gosops.TreeBranch:
		for _, item := range v {
			if s, ok := item.Key.(string); ok && strings.Contains(s, "PRIVATE KEY") {
				return true
			}
			if containsPrivateKey(item.Value) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if containsPrivateKey(x) {
				return true
			}
		}
	case gosops.Comment:
		return strings.Contains(v.Value, "PRIVATE KEY")
	}
	return false
}

func (c *Codec) encryptTo(rule Rule, plain []byte) ([]byte, error) {
	branches, err := parseSecret(plain)
	if err != nil {
		return nil, err
	}
	return c.encryptBranches(rule, branches)
}

// encryptBranches encrypts a parsed document; encryptTo has checked it.
func (c *Codec) encryptBranches(rule Rule, branches gosops.TreeBranches) ([]byte, error) {
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		return nil, fmt.Errorf("generate data key: %w", err)
	}
	parts := [][]byte{dataKey}
	threshold := 0
	if len(rule.Groups) > 1 {
		threshold = rule.ShamirThreshold
		if threshold == 0 {
			threshold = len(rule.Groups)
		}
		var err error
		parts, err = shamir.Split(dataKey, len(rule.Groups), threshold)
		if err != nil {
			return nil, fmt.Errorf("split data key: %w", err)
		}
	}
	now := c.now().UTC().Truncate(time.Second)
	groups := make([]gosops.KeyGroup, len(rule.Groups))
	for gi, g := range rule.Groups {
		for _, r := range g {
			mk, err := c.wrap(r, parts[gi], now)
			if err != nil {
				return nil, err
			}
			groups[gi] = append(groups[gi], mk)
		}
	}

	tree := gosops.Tree{
		Branches: branches,
		Metadata: gosops.Metadata{
			KeyGroups:       groups,
			ShamirThreshold: threshold,
			EncryptedRegex:  SecretEncryptedRegex,
			Version:         libraryVersion,
		},
	}
	// What the sops CLI does in common.EncryptTree: encrypt the values,
	// then the MAC with lastmodified as additional data.
	cipher := aes.NewCipher()
	mac, err := encryptValues(&tree, dataKey, cipher)
	if err != nil {
		return nil, fmt.Errorf("encrypt values: %w", err)
	}
	tree.Metadata.LastModified = now
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, now.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("encrypt mac: %w", err)
	}
	out, err := emitEncrypted(tree)
	if err != nil {
		return nil, fmt.Errorf("emit: %w", err)
	}
	// Belt and braces: nothing that looks like a PEM private key leaves
	// this function in clear text, whatever the layout bug.
	if bytes.Contains(out, []byte("PRIVATE KEY")) {
		return nil, ErrClearTextKey
	}
	return out, nil
}

// wrap encrypts one part of the data key to one recipient.
func (c *Codec) wrap(r Recipient, part []byte, now time.Time) (keys.MasterKey, error) {
	switch r.Kind {
	case KindAge:
		mk, err := sopsage.MasterKeyFromRecipient(r.ID)
		if err != nil {
			return nil, fmt.Errorf("age recipient %s: %w", r.ID, err)
		}
		if err := mk.Encrypt(part); err != nil {
			return nil, fmt.Errorf("encrypt data key to %s: %w", r, err)
		}
		return mk, nil
	case KindPGP:
		e := c.trust.pgp[r.ID]
		if e == nil {
			return nil, fmt.Errorf("%w: %s has no public key", ErrUntrustedRecipient, r)
		}
		enc, err := pgpEncrypt(e, part)
		if err != nil {
			return nil, fmt.Errorf("encrypt data key to %s: %w", r, err)
		}
		return &sopspgp.MasterKey{Fingerprint: r.ID, EncryptedKey: enc, CreationDate: now}, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedRecipient, r)
}

// pgpEncrypt is what the sops pgp key source does with OpenPGP, from an
// in-memory public key instead of a keyring on disk.
func pgpEncrypt(e *openpgp.Entity, data []byte) (string, error) {
	var buf bytes.Buffer
	aw, err := pgparmor.Encode(&buf, "PGP MESSAGE", nil)
	if err != nil {
		return "", err
	}
	w, err := openpgp.Encrypt(aw, []*openpgp.Entity{e}, nil, &openpgp.FileHints{IsBinary: true}, nil)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(data); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	if err := aw.Close(); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// load parses an encrypted file and checks its format version; it does not
// decrypt.
func load(ciphertext []byte) (gosops.Tree, error) {
	tree, err := loadTree(ciphertext)
	if err != nil {
		if errors.Is(err, gosops.MetadataNotFound) {
			return gosops.Tree{}, ErrNotEncrypted
		}
		return gosops.Tree{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := checkVersion(tree.Metadata.Version); err != nil {
		return gosops.Tree{}, err
	}
	if len(tree.Metadata.KeyGroups) == 0 {
		return gosops.Tree{}, fmt.Errorf("%w: no key groups", ErrMalformed)
	}
	return tree, nil
}

// loadTree is the sops YAML store's LoadEncryptedFile, through loadFast
// when the file is laid out as certops writes it. Any failure on that path
// goes to the store, so errors are the store's own.
func loadTree(ciphertext []byte) (gosops.Tree, error) {
	if branches, ok := loadFast(ciphertext); ok {
		if rest, md, ok := fastMetadata(branches); ok {
			return gosops.Tree{Branches: rest, Metadata: md}, nil
		}
		branches, md, err := stores.ExtractMetadata(branches, stores.MetadataOpts{Flatten: stores.MetadataFlattenNone})
		if err == nil {
			return gosops.Tree{Branches: branches, Metadata: md}, nil
		}
	}
	return newStore().LoadEncryptedFile(ciphertext)
}

// checkVersion accepts the sops 3.x file format, the only one there is; a
// file claiming another is either damaged or from a format this library
// cannot promise to read.
func checkVersion(v string) error {
	core, _, _ := strings.Cut(v, "-")
	parts := strings.Split(core, ".")
	if v == "" || parts[0] != "3" || len(parts) > 3 {
		return fmt.Errorf("%w: %q (want 3.x)", ErrUnsupportedVersion, v)
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 32); err != nil {
			return fmt.Errorf("%w: %q (want 3.x)", ErrUnsupportedVersion, v)
		}
	}
	return nil
}

// open decrypts and verifies; it returns the canonical plaintext and the
// file's metadata.
func (c *Codec) open(ciphertext []byte) ([]byte, gosops.Metadata, error) {
	tree, err := c.openTree(ciphertext)
	if err != nil {
		return nil, gosops.Metadata{}, err
	}
	plain, err := emitPlain(tree.Branches)
	if err != nil {
		return nil, gosops.Metadata{}, fmt.Errorf("%w: emit plaintext", ErrMalformed)
	}
	return plain, tree.Metadata, nil
}

// DecryptData decrypts an encrypted Secret manifest, verifies its MAC, and
// returns its data: the values of data base64-decoded, those of stringData
// as they are (winning over data, as the apiserver merges them). It is
// Decrypt without writing the plaintext manifest out and parsing it again,
// which was most of the cost of decrypting a Secret for a cluster.
func (c *Codec) DecryptData(file string, ciphertext []byte) (map[string][]byte, error) {
	tree, err := c.openTree(ciphertext)
	if err != nil {
		return nil, &FileError{Op: "decrypt", Path: file, Err: err}
	}
	data, err := secretData(tree.Branches[0])
	if err != nil {
		return nil, &FileError{Op: "decrypt", Path: file, Err: err}
	}
	return data, nil
}

// secretData reads data and stringData of a decrypted Secret document.
func secretData(doc gosops.TreeBranch) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, section := range []string{"data", "stringData"} {
		for _, item := range doc {
			if k, _ := item.Key.(string); k != section {
				continue
			}
			values, ok := item.Value.(gosops.TreeBranch)
			if !ok {
				if item.Value == nil {
					continue // "data:" with nothing under it
				}
				return nil, fmt.Errorf("%w: %s is not a mapping", ErrMalformed, section)
			}
			for _, v := range values {
				key, ok := v.Key.(string)
				if !ok {
					continue // a comment
				}
				s, ok := v.Value.(string)
				if !ok {
					return nil, fmt.Errorf("%w: %s.%s is not a string", ErrMalformed, section, key)
				}
				if section == "stringData" {
					out[key] = []byte(s)
					continue
				}
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return nil, fmt.Errorf("%w: data.%s is not base64", ErrMalformed, key)
				}
				out[key] = b
			}
		}
	}
	return out, nil
}

// openTree decrypts and verifies a file holding one v1 Secret.
func (c *Codec) openTree(ciphertext []byte) (gosops.Tree, error) {
	tree, err := load(ciphertext)
	if err != nil {
		return gosops.Tree{}, err
	}
	dataKey, err := c.dataKey(tree.Metadata)
	if err != nil {
		return gosops.Tree{}, err
	}
	cipher := newValueCipher()
	mac, err := decryptValues(&tree, dataKey, cipher)
	if err != nil {
		return gosops.Tree{}, &IntegrityError{Reason: "an encrypted value does not decrypt at its path (changed, moved or truncated)"}
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return gosops.Tree{}, &IntegrityError{Reason: "the MAC does not decrypt (mac or lastmodified changed)"}
	}
	if s, ok := stored.(string); !ok || s != mac {
		return gosops.Tree{}, &IntegrityError{Reason: "MAC mismatch: a value was changed, added or removed"}
	}
	// Verified, but only a v1 Secret may come out: this path feeds what is
	// applied to clusters, and a recipient could encrypt anything.
	if len(tree.Branches) != 1 {
		return gosops.Tree{}, fmt.Errorf("%w: want one YAML document, got %d", ErrMalformed, len(tree.Branches))
	}
	if err := checkSecret(tree.Branches[0]); err != nil {
		return gosops.Tree{}, err
	}
	return tree, nil
}

// ageOpen decrypts an armored age file holding a data key or a share of
// one (at most 1 KiB). age unwraps the file key and checks the header's
// MAC (age.DecryptHeader); a payload of one chunk, which a data key always
// is, is then opened here. age's own readers allocate a 64 KiB chunk
// buffer for it (two, for age.Decrypt), which was most of the bytes
// allocated in decrypting a Secret for a cluster and drove its collector.
// Anything else goes through age.DecryptReaderAt.
func ageOpen(armored string, ids []age.Identity) ([]byte, error) {
	bin, ok := dearmorAge(armored)
	if !ok {
		var err error
		bin, err = io.ReadAll(io.LimitReader(armor.NewReader(strings.NewReader(armored)), 64<<10))
		if err != nil {
			return nil, err
		}
	}
	if out, ok, err := ageOpenChunk(bin, ids); ok {
		return out, err
	}
	r, size, err := age.DecryptReaderAt(bytes.NewReader(bin), int64(len(bin)), ids...)
	if err != nil {
		return nil, err
	}
	if size > maxDataKeySize {
		return nil, fmt.Errorf("age payload of %d bytes is not a data key", size)
	}
	out := make([]byte, size)
	n, err := r.ReadAt(out, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("age payload: %w", err)
	}
	if n != len(out) {
		return nil, fmt.Errorf("age payload: read %d of %d bytes", n, size)
	}
	return out, nil
}

// maxDataKeySize bounds an age payload that holds a data key or a share.
const maxDataKeySize = 1024

// ageOpenChunk opens an age file (bin, binary) whose payload is one final
// STREAM chunk of at most maxDataKeySize bytes, as the age specification
// (C2SP age) defines it: after the header, a 16-byte nonce; the payload
// key is HKDF-SHA-256 of the file key with that nonce as salt and
// "payload" as info; the chunk is ChaCha20-Poly1305 with a nonce of eleven
// zero bytes (chunk 0) and a last-chunk flag of 1. ok is false when bin is
// not such a file; ageOpen then leaves it to age.
func ageOpenChunk(bin []byte, ids []age.Identity) (out []byte, ok bool, err error) {
	end, ok := ageHeaderEnd(bin)
	if !ok {
		return nil, false, nil
	}
	hdr, payload := bin[:end], bin[end:]
	const nonceSize = 16
	if len(payload) < nonceSize+chacha20poly1305.Overhead || len(payload) > nonceSize+maxDataKeySize+chacha20poly1305.Overhead {
		return nil, false, nil
	}
	fileKey, err := age.DecryptHeader(hdr, ids...)
	if err != nil {
		return nil, true, err
	}
	key, err := hkdf.Key(sha256.New, fileKey, payload[:nonceSize], "payload", chacha20poly1305.KeySize)
	if err != nil {
		return nil, true, err
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, true, err
	}
	var nonce [chacha20poly1305.NonceSize]byte
	nonce[len(nonce)-1] = 1 // the last chunk
	out, err = aead.Open(nil, nonce[:], payload[nonceSize:], nil)
	if err != nil {
		return nil, true, errors.New("age payload: failed to decrypt and authenticate the final chunk")
	}
	return out, true, nil
}

// dataKey recovers the data key with the codec's age identities only, never
// with the sops library's environment lookups or gpg.
func (c *Codec) dataKey(md gosops.Metadata) ([]byte, error) {
	var parts [][]byte
	// In file order, as sops does: the recipient label of a key is not
	// authenticated, so trying "our" key first could open a different
	// data key than sops -d does with the same identity.
	for _, g := range md.KeyGroups {
		for _, k := range g {
			ak, ok := k.(*sopsage.MasterKey)
			if !ok || len(c.ids) == 0 {
				continue
			}
			part, err := ageOpen(ak.EncryptedKey, c.ids)
			if err != nil {
				continue
			}
			parts = append(parts, part)
			break
		}
	}
	need := 1
	if len(md.KeyGroups) > 1 {
		need = md.ShamirThreshold
		if need == 0 {
			need = len(md.KeyGroups)
		}
	}
	if len(parts) < need || len(parts) == 0 {
		var names []string
		for _, g := range metadataGroups(md) {
			for _, r := range g {
				names = append(names, r.String())
			}
		}
		return nil, fmt.Errorf("%w (file is encrypted to %s)", ErrNoIdentity, strings.Join(names, ", "))
	}
	key := parts[0]
	if len(md.KeyGroups) > 1 {
		var err error
		key, err = shamir.Combine(parts)
		if err != nil {
			return nil, &IntegrityError{Reason: "key group parts do not combine"}
		}
	}
	if len(key) != 32 {
		return nil, &IntegrityError{Reason: "data key has the wrong length"}
	}
	return key, nil
}
