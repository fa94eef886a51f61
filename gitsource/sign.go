package gitsource

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// Signer signs the encoded commit and returns an armored signature for the
// commit's gpgsig header. It is go-git's Signer interface.
type Signer interface {
	Sign(message io.Reader) ([]byte, error)
}

// sshNamespace is the SSHSIG namespace git uses for commits (gpg.format=ssh).
const sshNamespace = "git"

type openPGPSigner struct{ entity *openpgp.Entity }

// NewOpenPGPSigner returns a Signer for an armored OpenPGP private key (the
// form of Flux's git.asc); passphrase may be empty for an unencrypted key.
func NewOpenPGPSigner(armoredKey []byte, passphrase string) (Signer, error) {
	list, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armoredKey))
	if err != nil {
		return nil, errors.New("gitsource: openpgp signing key: cannot read armored key ring")
	}
	for _, e := range list {
		if e.PrivateKey == nil {
			continue
		}
		if e.PrivateKey.Encrypted {
			if passphrase == "" {
				return nil, errors.New("gitsource: openpgp signing key is encrypted and no passphrase was given")
			}
			if err := e.DecryptPrivateKeys([]byte(passphrase)); err != nil {
				return nil, errors.New("gitsource: openpgp signing key: wrong passphrase")
			}
		}
		return &openPGPSigner{entity: e}, nil
	}
	return nil, errors.New("gitsource: openpgp signing key: no private key in key ring")
}

func (s *openPGPSigner) Sign(message io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, s.entity, message, nil); err != nil {
		return nil, fmt.Errorf("gitsource: openpgp sign: %w", err)
	}
	return buf.Bytes(), nil
}

type sshSigner struct{ signer ssh.Signer }

// NewSSHSigner returns a Signer making SSHSIG signatures in the "git"
// namespace (like gpg.format=ssh) with an OpenSSH or PEM private key.
func NewSSHSigner(privateKey []byte, passphrase string) (Signer, error) {
	var (
		s   ssh.Signer
		err error
	)
	if passphrase != "" {
		s, err = ssh.ParsePrivateKeyWithPassphrase(privateKey, []byte(passphrase))
	} else {
		s, err = ssh.ParsePrivateKey(privateKey)
	}
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, errors.New("gitsource: ssh signing key is encrypted and no passphrase was given")
		}
		return nil, errors.New("gitsource: ssh signing key: cannot parse private key")
	}
	return &sshSigner{signer: s}, nil
}

func (s *sshSigner) Sign(message io.Reader) ([]byte, error) {
	// sha512 is what ssh-keygen -Y sign (and so git) uses by default.
	sig, err := sshsig.Sign(message, s.signer, sshsig.HashSHA512, sshNamespace)
	if err != nil {
		return nil, fmt.Errorf("gitsource: ssh sign: %w", err)
	}
	return sshsig.Armor(sig), nil
}

// Verifier checks commit signatures against trusted keys. The zero value
// trusts nothing.
type Verifier struct {
	pgp openpgp.EntityList
	ssh []ssh.PublicKey
}

// NewVerifier trusts the armored OpenPGP public keys and the SSH keys of an
// allowed-signers file (git's gpg.ssh.allowedSignersFile format; plain
// authorized_keys lines are accepted too).
func NewVerifier(openPGPKeys [][]byte, allowedSigners []byte) (*Verifier, error) {
	v := &Verifier{}
	for i, k := range openPGPKeys {
		list, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(k))
		if err != nil {
			return nil, fmt.Errorf("gitsource: trusted openpgp key %d: %w", i+1, err)
		}
		v.pgp = append(v.pgp, list...)
	}
	keys, err := ParseAllowedSigners(allowedSigners)
	if err != nil {
		return nil, err
	}
	v.ssh = keys
	if len(v.pgp) == 0 && len(v.ssh) == 0 {
		return nil, errors.New("gitsource: verification needs at least one trusted key")
	}
	return v, nil
}

// ParseAllowedSigners reads the SSH public keys of an allowed-signers file:
// "principals [options] keytype base64 [comment]" per line, '#' comments.
// Keys restricted to namespaces that exclude "git" are skipped. Every bad
// line is reported at once.
func ParseAllowedSigners(data []byte) ([]ssh.PublicKey, error) {
	var (
		keys []ssh.PublicKey
		errs []error
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, opts, ok := parseKeyLine(line)
		if !ok {
			// The first field is the list of principals.
			if _, rest, cut := strings.Cut(line, " "); cut {
				key, opts, ok = parseKeyLine(strings.TrimSpace(rest))
			}
		}
		if !ok {
			errs = append(errs, fmt.Errorf("line %d: no ssh public key", n))
			continue
		}
		if !namespaceAllowed(opts) {
			continue
		}
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("gitsource: allowed signers: %w", errors.Join(errs...))
	}
	return keys, nil
}

func parseKeyLine(s string) (ssh.PublicKey, []string, bool) {
	key, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, nil, false
	}
	return key, opts, true
}

func namespaceAllowed(opts []string) bool {
	for _, o := range opts {
		name, val, ok := strings.Cut(o, "=")
		if !ok || !strings.EqualFold(name, "namespaces") {
			continue
		}
		for _, ns := range strings.Split(strings.Trim(val, `"`), ",") {
			if ns = strings.TrimSpace(ns); ns == sshNamespace || ns == "*" {
				return true
			}
		}
		return false
	}
	return true
}

// VerifyCommit checks that c carries a valid signature by a trusted key. It
// returns a description of the signer (OpenPGP key id or SSH fingerprint).
// Any failure wraps ErrVerification.
func (v *Verifier) VerifyCommit(c *object.Commit) (string, error) {
	fail := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("gitsource: commit %s: %w: %s", c.Hash, ErrVerification, fmt.Sprintf(format, a...))
	}
	sig := strings.TrimSpace(c.PGPSignature)
	if sig == "" {
		return fail("commit is not signed")
	}
	encoded := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(encoded); err != nil {
		return fail("cannot encode commit: %v", err)
	}
	payload := func() io.Reader {
		r, _ := encoded.Reader() // a MemoryObject's Reader never fails
		return r
	}
	switch {
	case strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----"):
		if len(v.pgp) == 0 {
			return fail("openpgp signature, but no openpgp key is trusted")
		}
		e, err := openpgp.CheckArmoredDetachedSignature(v.pgp, payload(), strings.NewReader(sig), &packet.Config{})
		if err != nil {
			return fail("openpgp signature not made by a trusted key: %v", err)
		}
		return "openpgp:" + strings.ToUpper(fmt.Sprintf("%x", e.PrimaryKey.Fingerprint)), nil
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		s, err := sshsig.Unarmor([]byte(sig))
		if err != nil {
			return fail("malformed ssh signature")
		}
		for _, k := range v.ssh {
			if !bytes.Equal(k.Marshal(), s.PublicKey.Marshal()) {
				continue
			}
			if err := sshsig.Verify(payload(), s, k, s.HashAlgorithm, sshNamespace); err != nil {
				return fail("ssh signature does not match the commit: %v", err)
			}
			return "ssh:" + ssh.FingerprintSHA256(k), nil
		}
		return fail("ssh signature by untrusted key %s", ssh.FingerprintSHA256(s.PublicKey))
	}
	return fail("unknown signature format")
}

// trusts reports whether signatures by s verify with v; Open uses it to
// insist that certops' own key is in the trusted set.
func (v *Verifier) trusts(s Signer) error {
	c := &object.Commit{
		Author:   object.Signature{Name: "certops", Email: "certops@invalid"},
		Message:  "probe\n",
		TreeHash: plumbing.ZeroHash,
	}
	c.Committer = c.Author
	enc := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(enc); err != nil {
		return err
	}
	r, _ := enc.Reader()
	sig, err := s.Sign(r)
	if err != nil {
		return err
	}
	c.PGPSignature = string(sig)
	_, err = v.VerifyCommit(c)
	return err
}
