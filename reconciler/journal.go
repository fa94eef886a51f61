package reconciler

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/spec"
)

// The order journal makes a crash between the CA issuing and the commit
// harmless for backends whose orders live at the CA (issuer.Resumer, that
// is ACME). Before such an order is placed, the reconciler writes an entry
// to <state-dir>/journal/<name-hash>.json: the certificate, its spec hash,
// the issuer, a fingerprint of both, and the private key and CSR sealed to
// the daemon's own age recipients; the order URL is added as soon as the
// CA has created the order. A later pass that finds the certificate still
// due with an entry of the same fingerprint resumes that order with that
// key instead of ordering again. The entry is deleted once the commit
// carrying the certificate is pushed (never before), when the spec or the
// issuer changes, and when the certificate is up to date or removed. A
// corrupt or unreadable entry is logged and ignored.

// Sealer encrypts journal entries so that the state directory never holds
// a private key in plain text. AgeSealer is the daemon's.
type Sealer interface {
	Seal(plain []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// AgeSealer seals to the recipients of the daemon's own age identities
// and opens with those identities.
type AgeSealer struct {
	ids        []age.Identity
	recipients []age.Recipient
}

// NewAgeSealer returns a sealer for ids. Only X25519 and hybrid identities
// have a recipient the daemon can derive; with none, it is an error.
func NewAgeSealer(ids []age.Identity) (*AgeSealer, error) {
	s := &AgeSealer{ids: ids}
	for _, id := range ids {
		switch x := id.(type) {
		case *age.X25519Identity:
			s.recipients = append(s.recipients, x.Recipient())
		case *age.HybridIdentity:
			s.recipients = append(s.recipients, x.Recipient())
		}
	}
	if len(s.recipients) == 0 {
		return nil, errors.New("reconciler: journal: no age identity with a recipient (X25519 or hybrid)")
	}
	return s, nil
}

// Seal encrypts plain to the identities' recipients.
func (s *AgeSealer) Seal(plain []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := age.Encrypt(&b, s.recipients...)
	if err != nil {
		return nil, fmt.Errorf("reconciler: journal: seal: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("reconciler: journal: seal: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("reconciler: journal: seal: %w", err)
	}
	return b.Bytes(), nil
}

// Open decrypts what Seal wrote.
func (s *AgeSealer) Open(sealed []byte) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(sealed), s.ids...)
	if err != nil {
		return nil, fmt.Errorf("reconciler: journal: open: %w", err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reconciler: journal: open: %w", err)
	}
	return b, nil
}

const journalDir = "journal"

// journalEntry is one file of the journal. Everything but Sealed is
// clear text and holds no secret.
type journalEntry struct {
	Version     int       `json:"version"`
	Cert        string    `json:"certificate"`
	SpecHash    string    `json:"specHash"`
	Issuer      string    `json:"issuer"`
	Fingerprint string    `json:"fingerprint"`
	OrderURL    string    `json:"orderURL,omitempty"`
	Created     time.Time `json:"created"`
	// Sealed is a journalSecret, JSON-encoded and sealed (age).
	Sealed []byte `json:"sealed"`
}

// journalSecret is the sealed part of an entry.
type journalSecret struct {
	KeyPEM []byte `json:"key"`
	CSR    []byte `json:"csr"` // DER
}

// journal is the directory of entries and the sealer.
type journal struct {
	dir    string
	sealer Sealer
}

// newJournal returns nil (no journal) without a state directory or sealer.
func newJournal(stateDir string, s Sealer) *journal {
	if stateDir == "" || s == nil {
		return nil
	}
	return &journal{dir: filepath.Join(stateDir, journalDir), sealer: s}
}

func (j *journal) path(cert string) string {
	sum := sha256.Sum256([]byte(cert))
	return filepath.Join(j.dir, hex.EncodeToString(sum[:16])+".json")
}

// read returns the entry of cert; fs.ErrNotExist when there is none.
func (j *journal) read(cert string) (*journalEntry, error) {
	b, err := os.ReadFile(j.path(cert))
	if err != nil {
		return nil, err
	}
	var e journalEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("reconciler: journal entry %s: %w", j.path(cert), err)
	}
	if e.Version != 1 || e.Cert != cert || len(e.Sealed) == 0 {
		return nil, fmt.Errorf("reconciler: journal entry %s: not an entry of %s", j.path(cert), cert)
	}
	return &e, nil
}

// open decrypts an entry's key and CSR.
func (j *journal) open(e *journalEntry) (crypto.Signer, *journalSecret, error) {
	plain, err := j.sealer.Open(e.Sealed)
	if err != nil {
		return nil, nil, err
	}
	var s journalSecret
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, nil, fmt.Errorf("reconciler: journal entry of %s: sealed part: %w", e.Cert, err)
	}
	key, err := issuer.ParsePrivateKeyPEM(s.KeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("reconciler: journal entry of %s: %w", e.Cert, err)
	}
	return key, &s, nil
}

// write stores e atomically: a temporary file in the same directory,
// fsync, rename, fsync of the directory. A crash leaves the old entry or
// the new one, never a torn file.
func (j *journal) write(e *journalEntry) error {
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return fmt.Errorf("reconciler: journal: %w", err)
	}
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("reconciler: journal: %w", err)
	}
	return j.writeFile(j.path(e.Cert), data)
}

// writeFile writes one journal file atomically.
func (j *journal) writeFile(path string, data []byte) error {
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return fmt.Errorf("reconciler: journal: %w", err)
	}
	tmp, err := os.CreateTemp(j.dir, ".entry-*")
	if err != nil {
		return fmt.Errorf("reconciler: journal: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("reconciler: journal: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("reconciler: journal: %w", err)
	}
	if d, err := os.Open(j.dir); err == nil {
		_ = d.Sync() // make the rename durable where the platform allows
		d.Close()
	}
	return nil
}

// remove deletes the entry of cert, if any.
func (j *journal) remove(cert string) error {
	if err := os.Remove(j.path(cert)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reconciler: journal: %w", err)
	}
	return nil
}

// resumable is what a pass found in the journal for one certificate.
type resumable struct {
	entry *journalEntry
	key   crypto.Signer
	csr   []byte
}

// journalFor returns cert's usable entry, or nil. An entry for another
// spec or issuer is deleted; a corrupt one is logged and left to be
// overwritten by the next order.
func (p *pass) journalFor(c *spec.Certificate) *resumable {
	j := p.r.journal
	if j == nil {
		return nil
	}
	e, err := j.read(c.Key())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		p.r.log.Warn("ignoring a corrupt journal entry", "cert", c.Key(), "error", err)
		return nil
	}
	if e.Fingerprint != p.fingerprint(c) {
		p.r.log.Info("discarding the journal entry of an earlier spec or issuer", "cert", c.Key())
		if err := j.remove(c.Key()); err != nil {
			p.r.log.Error("removing a journal entry", "cert", c.Key(), "error", err)
		}
		return nil
	}
	key, s, err := j.open(e)
	if err != nil {
		p.r.log.Warn("ignoring a journal entry that does not open", "cert", c.Key(), "error", err)
		return nil
	}
	return &resumable{entry: e, key: key, csr: s.CSR}
}

// signJournaled obtains a certificate through a Resumer: it resumes the
// journalled order when there is one, and otherwise journals the key and
// CSR before ordering and the order URL as soon as the CA has created it.
// An order that cannot be resumed (issuer.ErrReorder) falls back to a new
// order with the same key.
func (p *pass) signJournaled(ctx context.Context, c *spec.Certificate, rs issuer.Resumer, req *issuer.Request, keyPEM []byte, prev *resumable) (*issuer.Result, error) {
	j := p.r.journal
	log := p.r.log
	if prev != nil && prev.entry.OrderURL != "" {
		rreq := req
		if stored, err := issuer.NewRequest(req.Name, prev.csr, req.Duration); err == nil {
			stored.IsCA, stored.Usages, stored.ExtKeyUsages, stored.Replaces = req.IsCA, req.Usages, req.ExtKeyUsages, req.Replaces
			rreq = stored
		}
		log.Info("resuming the journalled order", "cert", c.Key(), "issuer", c.Spec.IssuerRef.Name)
		res, err := rs.Resume(ctx, rreq, prev.entry.OrderURL)
		if !errors.Is(err, issuer.ErrReorder) {
			return res, err
		}
		log.Warn("journalled order cannot be resumed; ordering again", "cert", c.Key(), "reason", err.Error())
	}
	entry := &journalEntry{Version: 1, Cert: c.Key(), SpecHash: c.SpecHash(), Issuer: c.Spec.IssuerRef.Name,
		Fingerprint: p.fingerprint(c), Created: p.now.UTC()}
	secret, err := json.Marshal(journalSecret{KeyPEM: keyPEM, CSR: req.CSR.Raw})
	if err == nil {
		entry.Sealed, err = j.sealer.Seal(secret)
	}
	if err == nil {
		err = j.write(entry)
	}
	if err != nil {
		// Without an entry a crash would only cost a second order, as
		// before the journal existed; never a reason to stop issuing.
		log.Error("journalling the order failed; ordering without it", "cert", c.Key(), "error", err)
		return rs.Sign(ctx, req)
	}
	jreq := *req
	jreq.OnOrder = func(url string) {
		entry.OrderURL = url
		if err := j.write(entry); err != nil {
			log.Error("journalling the order URL", "cert", c.Key(), "error", err)
		}
	}
	return rs.Sign(ctx, &jreq)
}

// sweepJournal deletes the entries that no pass will resume: of
// certificates that are up to date (their commit has been pushed: a pass
// pushes earlier commits before it plans), removed, or now have another
// spec or issuer. Entries of certificates whose spec is invalid are kept.
func (p *pass) sweepJournal(plan []spec.PlanEntry) {
	j := p.r.journal
	if j == nil {
		return
	}
	files, err := os.ReadDir(j.dir)
	if err != nil {
		return
	}
	byPath := map[string]spec.PlanEntry{}
	for _, e := range plan {
		byPath[filepath.Base(j.path(e.Name))] = e
	}
	for _, f := range files {
		if f.IsDir() || !strings.HasSuffix(f.Name(), ".json") || strings.HasPrefix(f.Name(), ".") {
			continue
		}
		if strings.HasPrefix(f.Name(), "secret-") {
			// A journalled issuer secret that Git now holds was pushed.
			var e journalSecretFile
			if b, err := os.ReadFile(filepath.Join(j.dir, f.Name())); err == nil && json.Unmarshal(b, &e) == nil && e.Path != "" {
				if _, err := fs.Stat(p.fsys, e.Path); err == nil {
					_ = os.Remove(filepath.Join(j.dir, f.Name()))
				}
			}
			continue
		}
		pe, ok := byPath[f.Name()]
		if !ok {
			continue
		}
		stale := pe.Decision.Action == spec.ActionNone || pe.Decision.Action == spec.ActionRemove
		if !stale {
			if c := p.repo.Certificate(pe.Name); c != nil {
				if e, err := j.read(pe.Name); err == nil {
					stale = e.Fingerprint != p.fingerprint(c)
				}
			}
		}
		if stale {
			if err := j.remove(pe.Name); err != nil {
				p.r.log.Error("removing a journal entry", "cert", pe.Name, "error", err)
			}
		}
	}
}

// forgetPushed deletes the entries of the certificates a pushed commit
// carries.
func (p *pass) forgetPushed(keys []string, issuerFiles []string) {
	j := p.r.journal
	if j == nil {
		return
	}
	for _, key := range keys {
		if err := j.remove(key); err != nil {
			p.r.log.Error("removing a journal entry", "cert", key, "error", err)
		}
	}
	for _, file := range issuerFiles {
		if err := os.Remove(j.secretPath(file)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.r.log.Error("removing a journalled issuer secret", "file", file, "error", err)
		}
	}
}

// Secret files a backend writes through IssuerEnv.WriteSecret (an ACME
// account key) reach Git only with the pass' commit; an order placed by
// that account would be lost with a crash before the commit. They are
// journalled too, sealed, as secret-<path-hash>.json, served by ReadSecret
// while Git lacks them (and queued again for the commit), and deleted
// once pushed.

// journalSecretFile is a backend's pending Secret file.
type journalSecretFile struct {
	Version int    `json:"version"`
	Path    string `json:"path"`
	Sealed  []byte `json:"sealed"` // the plaintext manifest, sealed
}

func (j *journal) secretPath(file string) string {
	sum := sha256.Sum256([]byte(file))
	return filepath.Join(j.dir, "secret-"+hex.EncodeToString(sum[:16])+".json")
}

// journalSecretWrite journals a backend's Secret file until it is pushed.
func (p *pass) journalSecretWrite(file string, manifest []byte) {
	j := p.r.journal
	if j == nil {
		return
	}
	err := func() error {
		sealed, err := j.sealer.Seal(manifest)
		if err != nil {
			return err
		}
		data, err := json.Marshal(journalSecretFile{Version: 1, Path: file, Sealed: sealed})
		if err != nil {
			return err
		}
		return j.writeFile(j.secretPath(file), data)
	}()
	if err != nil {
		p.r.log.Error("journalling an issuer secret", "file", file, "error", err)
	}
}

// journalledSecret returns a journalled Secret file's data and queues the
// file for this pass' commit again.
func (p *pass) journalledSecret(file string) (map[string][]byte, bool) {
	j := p.r.journal
	if j == nil {
		return nil, false
	}
	b, err := os.ReadFile(j.secretPath(file))
	if err != nil {
		return nil, false
	}
	var e journalSecretFile
	if err := json.Unmarshal(b, &e); err != nil || e.Path != file {
		p.r.log.Warn("ignoring a corrupt journalled issuer secret", "file", file)
		return nil, false
	}
	plain, err := j.sealer.Open(e.Sealed)
	if err != nil {
		p.r.log.Warn("ignoring a journalled issuer secret that does not open", "file", file, "error", err)
		return nil, false
	}
	sd, err := parseSecret(file, plain)
	if err != nil {
		p.r.log.Warn("ignoring a journalled issuer secret", "file", file, "error", err)
		return nil, false
	}
	p.mu.Lock()
	p.writes[file] = plain
	p.mu.Unlock()
	return sd.Data, true
}
