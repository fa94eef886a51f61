package sops

import (
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"
	"time"

	gosops "github.com/getsops/sops/v3"
)

// encryptValues is tree.Encrypt for certops' own layout. sops decides, for
// every value, whether to encrypt it by compiling the file's
// encrypted_regex again for each element of the value's path: over a tenth
// of the CPU of issuing thousands of certificates. For files whose only
// selector is SecretEncryptedRegex and that hold no comments, that
// selection is exactly "an element of the path is data or stringData", and
// the walk below is sops' walk (same order, same leaves, same MAC input,
// same additional data). Any other file goes to sops.
func encryptValues(tree *gosops.Tree, key []byte, cipher gosops.Cipher) (string, error) {
	if !ownLayout(tree) {
		return tree.Encrypt(key, cipher)
	}
	mac := newMACWriter()
	for _, b := range tree.Branches {
		err := walkLeaves(b, nil, func(v any, path []string) (any, error) {
			if err := mac.add(v); err != nil {
				return nil, err
			}
			if !secretPayload(path) {
				return v, nil
			}
			enc, err := cipher.Encrypt(v, key, strings.Join(path, ":")+":")
			if err != nil {
				return nil, fmt.Errorf("encrypt value: %w", err)
			}
			return enc, nil
		})
		if err != nil {
			return "", fmt.Errorf("walk tree: %w", err)
		}
	}
	return mac.sum(), nil
}

// decryptValues is tree.Decrypt for certops' own layout (see
// encryptValues): it decrypts the payload in place and returns the MAC of
// the plaintext, for the caller to compare with the stored one.
func decryptValues(tree *gosops.Tree, key []byte, cipher gosops.Cipher) (string, error) {
	if !ownLayout(tree) {
		return tree.Decrypt(key, cipher)
	}
	mac := newMACWriter()
	for _, b := range tree.Branches {
		err := walkLeaves(b, nil, func(v any, path []string) (any, error) {
			if secretPayload(path) {
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("encrypted value of type %T, want a string", v)
				}
				var err error
				if v, err = cipher.Decrypt(s, key, strings.Join(path, ":")+":"); err != nil {
					return nil, fmt.Errorf("decrypt value: %w", err)
				}
			}
			if _, isComment := v.(gosops.Comment); isComment {
				return v, nil // a value typed as a comment is left out of the MAC
			}
			return v, mac.add(v)
		})
		if err != nil {
			return "", fmt.Errorf("walk tree: %w", err)
		}
	}
	return mac.sum(), nil
}

// ownLayout reports whether tree selects its encrypted values with
// SecretEncryptedRegex alone, puts every value in the MAC, and holds no
// comments (whose handling in sops depends on the comments around them).
func ownLayout(tree *gosops.Tree) bool {
	md := &tree.Metadata
	if md.EncryptedRegex != SecretEncryptedRegex || md.UnencryptedSuffix != "" || md.EncryptedSuffix != "" ||
		md.UnencryptedRegex != "" || md.UnencryptedCommentRegex != "" || md.EncryptedCommentRegex != "" ||
		md.MACOnlyEncrypted {
		return false
	}
	for _, b := range tree.Branches {
		if hasComments(b) {
			return false
		}
	}
	return true
}

// secretPayload is SecretEncryptedRegex applied the way sops applies it:
// to each element of the path.
func secretPayload(path []string) bool {
	for _, p := range path {
		if p == "data" || p == "stringData" {
			return true
		}
	}
	return false
}

// macWriter feeds values to a file's MAC as sops does (gosops.ToBytes of
// each), copying strings through one buffer rather than one per value.
type macWriter struct {
	h   hash.Hash
	buf []byte
}

func newMACWriter() *macWriter { return &macWriter{h: sha512.New()} }

func (m *macWriter) add(v any) error {
	if s, ok := v.(string); ok {
		m.buf = append(m.buf[:0], s...)
		m.h.Write(m.buf)
		return nil
	}
	b, err := gosops.ToBytes(v)
	if err != nil {
		return fmt.Errorf("value of type %T: %w", v, err)
	}
	m.h.Write(b)
	return nil
}

// sum is the MAC as sops writes it, in upper-case hex.
func (m *macWriter) sum() string { return fmt.Sprintf("%X", m.h.Sum(nil)) }

// walkLeaves visits the leaves of a comment-free branch in sops' order
// (TreeBranch.walkBranch) and replaces each with what visit returns. Null
// values are not visited, as in sops.
func walkLeaves(b gosops.TreeBranch, path []string, visit func(v any, path []string) (any, error)) error {
	for i, item := range b {
		key, ok := item.Key.(string)
		if !ok {
			return fmt.Errorf("key of type %T: only string keys are supported", item.Key)
		}
		v, err := walkValue(item.Value, append(path, key), visit)
		if err != nil {
			return err
		}
		b[i].Value = v
	}
	return nil
}

func walkValue(v any, path []string, visit func(v any, path []string) (any, error)) (any, error) {
	switch v := v.(type) {
	case string, int, bool, float64, time.Time:
		return visit(v, path)
	case []byte:
		return visit(string(v), path)
	case gosops.TreeBranch:
		return v, walkLeaves(v, path, visit)
	case []any:
		for i, x := range v {
			nx, err := walkValue(x, path, visit)
			if err != nil {
				return nil, err
			}
			v[i] = nx
		}
		return v, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("value of unknown type %T", v)
}
