package reconciler

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/spec"
)

// Verification of committed keypairs.
//
// Planning reads only clear-text annotations, so it cannot see a tls.key
// that does not belong to its tls.crt, nor judge a keypair someone else
// committed. A pass decrypts each certificate's Secret file once per
// content: the file's hash is kept in <state-dir>/verified.json once its
// keypair checked out (or certops wrote it), and a file whose bytes still
// hash the same is not decrypted again. An unchanged repository therefore
// decrypts nothing; a file edited by hand, new, or never checked is
// decrypted once.
//
// The outcome for each file checked:
//   - it does not decrypt (corrupt, wrong recipients): the certificate is
//     held with an error and a problem naming the file; the file is never
//     overwritten or deleted, and other certificates go on;
//   - certops wrote it and tls.key does not belong to the leaf of tls.crt:
//     re-issue with reason KeyMismatch (cert-manager's InvalidKeyPair);
//   - no certops annotations (a keypair committed by hand, for example
//     imported from a cert-manager Secret): adopted when it matches the
//     spec (names, subject, isCA, key algorithm and size, valid now, and
//     signed by the issuer's CA for a ca issuer or by itself for a
//     selfSigned one): the file is rewritten with certops' annotations in
//     the pass' commit (Reason: Adopted) and nothing is ordered. Otherwise
//     it is issued as usual.

// verifiedFile holds the content hashes of verified Secret files.
const verifiedFile = "verified.json"

type verifiedState struct {
	Version int `json:"version"`
	// Files maps a Secret file's repository path to the sha256 of its
	// encrypted bytes when it was last verified. No key material.
	Files map[string]string `json:"files"`
}

func loadVerified(dir string) (map[string]string, error) {
	if dir == "" {
		return map[string]string{}, nil
	}
	data, err := os.ReadFile(filepath.Join(dir, verifiedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reconciler: reading verified files: %w", err)
	}
	var v verifiedState
	if err := json.Unmarshal(data, &v); err != nil || v.Files == nil {
		// A torn or foreign file costs one decryption per file, no more.
		return map[string]string{}, nil
	}
	return v.Files, nil
}

func saveVerified(dir string, files map[string]string) error {
	if dir == "" {
		return nil
	}
	data, err := json.MarshalIndent(verifiedState{Version: 1, Files: files}, "", "  ")
	if err != nil {
		return fmt.Errorf("reconciler: writing verified files: %w", err)
	}
	if err := writeAtomic(dir, verifiedFile, data); err != nil {
		return fmt.Errorf("reconciler: writing verified files: %w", err)
	}
	return nil
}

// contentHash identifies a file's bytes by their Git blob id, which the
// commit's tree already holds: whether a file was verified is then known
// without reading it (fileHash). Marks from older versions (sha256:) match
// nothing, so each file is verified once more after an upgrade.
func contentHash(b []byte) string {
	return blobMark(gitsource.BlobID(b))
}

// blobMark is the verified mark of the file whose Git blob id is blob.
func blobMark(blob string) string { return "git:" + blob }

// fileHash is contentHash of file as the commit's tree records it, without
// reading the file; false when the tree cannot say.
func (p *pass) fileHash(file string) (string, bool) {
	h, ok := p.fsys.(spec.ContentHasher)
	if !ok {
		return "", false
	}
	id, ok := h.ContentHash(file)
	if !ok {
		return "", false
	}
	return blobMark(id), true
}

// noteVerified records that file's encrypted bytes hold a consistent
// keypair: certops wrote them, or it checked them. Called only from the
// pass' own goroutine.
func (p *pass) noteVerified(file string, ciphertext []byte) {
	p.noteVerifiedBlob(file, gitsource.BlobID(ciphertext))
}

// noteVerifiedBlob is noteVerified of a file whose blob id is known.
func (p *pass) noteVerifiedBlob(file, blob string) {
	p.r.verified[file] = blobMark(blob)
	if p.touched == nil {
		p.touched = map[string]bool{}
	}
	p.touched[file] = true
}

// noteRekeyed carries a verified mark over to a re-encrypted file: the
// plaintext is the same.
func (p *pass) noteRekeyed(rekeyed map[string][]byte) {
	for file, enc := range rekeyed {
		old, err := fs.ReadFile(p.fsys, file)
		if err == nil && p.r.verified[file] == contentHash(old) {
			p.noteVerified(file, enc)
		}
	}
}

// saveVerified forgets files that are gone and persists the rest.
func (p *pass) saveVerified() {
	for file := range p.r.verified {
		if p.touched[file] {
			continue
		}
		if _, ok := p.fileHash(file); ok {
			continue
		}
		if _, err := fs.Stat(p.fsys, file); err != nil {
			delete(p.r.verified, file)
		}
	}
	if err := saveVerified(p.r.o.StateDir, p.r.verified); err != nil {
		p.r.log.Error("saving verified files", "error", err)
	}
}

// check is one Secret file to verify in this pass.
type check struct {
	idx    int // into the plan entries
	c      *spec.Certificate
	o      *spec.Observed // nil: no certops annotations
	file   string
	hash   string
	ct     []byte
	readEr error       // unreadable or does not decrypt: hold
	sd     *secretData // decrypted
	sdErr  error       // decrypted, but not a Secret we can read
}

// verify checks the Secret files of the planned certificates that changed
// since they were last verified, and returns the entries still to act on:
// held and adopted certificates are taken out (their results are in the
// report), key mismatches turn into re-issues.
func (p *pass) verify(entries []spec.PlanEntry) []spec.PlanEntry {
	r := p.r
	cfg := &p.repo.Config
	var todo []*check
	for i := range entries {
		e := &entries[i]
		if e.Decision.Action == spec.ActionRemove {
			continue
		}
		c := p.repo.Certificate(e.Name)
		if c == nil || p.waiting(c, e) {
			continue
		}
		o := p.observed[e.Name]
		file := c.SecretPath(cfg)
		if o != nil {
			file = o.File
			if h, ok := p.fileHash(file); ok && r.verified[file] == h {
				continue // verified before, and unchanged since
			}
		}
		ct, err := fs.ReadFile(p.fsys, file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		ck := &check{idx: i, c: c, o: o, file: file}
		if err != nil {
			ck.readEr = err
			todo = append(todo, ck)
			continue
		}
		if o == nil {
			// A file naming another certificate is that one's business.
			if ho, err := spec.ReadObserved(file, ct); err == nil && ho.Certificate() != "" {
				continue
			}
		}
		ck.hash = contentHash(ct)
		if o != nil && r.verified[file] == ck.hash {
			continue
		}
		ck.ct = ct
		todo = append(todo, ck)
	}
	if len(todo) == 0 {
		return entries
	}

	// Decrypt concurrently, bounded like issuance.
	forEach(len(todo), r.o.Workers, func(i int) {
		ck := todo[i]
		if ck.readEr != nil {
			return
		}
		plain, err := r.o.Crypter.Decrypt(ck.file, ck.ct)
		if err != nil {
			ck.readEr = err
			return
		}
		ck.sd, ck.sdErr = parseSecret(ck.file, plain)
	})

	// Decide in CA order, so that a CA adopted here can vouch for the
	// leaves adopted after it.
	byKey := map[string]*check{}
	certs := make([]*spec.Certificate, 0, len(todo))
	for _, ck := range todo {
		byKey[ck.c.Key()] = ck
		certs = append(certs, ck.c)
	}
	drop := map[int]bool{}
	for _, level := range p.levels(certs) {
		for _, c := range level {
			ck := byKey[c.Key()]
			e := &entries[ck.idx]
			switch {
			case ck.readEr != nil:
				p.hold(e, ck.file, ck.readEr)
				drop[ck.idx] = true
			case ck.o != nil:
				if _, _, why := ck.keypair(); why != "" {
					if e.Decision.Reason != spec.ReasonDoesNotExist {
						e.Decision = spec.Decision{Action: spec.ActionReissue, Reason: spec.ReasonKeyMismatch,
							Message: why, RenewAt: e.Decision.RenewAt}
					}
					r.log.Warn("committed keypair does not check out", "cert", e.Name, "file", ck.file, "error", why)
					continue
				}
				p.noteVerified(ck.file, ck.ct)
			case e.Decision.Reason == spec.ReasonDoesNotExist:
				res, d := p.adopt(ck)
				if res != nil {
					p.rep.Results = append(p.rep.Results, *res)
					drop[ck.idx] = true
					continue
				}
				r.log.Info("committed keypair not adopted", "cert", e.Name, "file", ck.file, "reason", string(d.Reason), "error", d.Message)
				e.Decision = d
			}
		}
	}
	out := entries[:0]
	for i, e := range entries {
		if !drop[i] {
			out = append(out, e)
		}
	}
	return out
}

// waiting reports whether the certificate is held back by its backoff; such
// a certificate's file is not looked at until it is due again.
func (p *pass) waiting(c *spec.Certificate, e *spec.PlanEntry) bool {
	st := p.r.state[e.Name]
	return e.Decision.Action != spec.ActionNone && st != nil && st.Fingerprint == p.fingerprint(c) &&
		(st.Permanent || p.now.Before(st.NextRetry))
}

// hold reports a Secret file that cannot be read or decrypted. Nothing is
// written over it: it may be a human's work, or encrypted to recipients this
// daemon is not one of.
func (p *pass) hold(e *spec.PlanEntry, file string, err error) {
	msg := fmt.Sprintf("cannot be decrypted; certificate %s is held and the file left as it is: %v", e.Name, err)
	p.rep.Problems = append(p.rep.Problems, spec.Problem{File: file, Message: msg})
	p.rep.Results = append(p.rep.Results, CertResult{Name: e.Name, File: e.File, Issuer: e.Issuer,
		Action: spec.ActionNone, Reason: e.Decision.Reason, NotBefore: e.NotBefore, NotAfter: e.NotAfter,
		Error: "reconciler: " + file + ": " + msg, Targets: targetStrings(e.Targets)})
	p.r.log.Error("Secret file held", "cert", e.Name, "file", file, "error", err)
}

// keypair parses the decrypted file's chain and key and checks that the key
// belongs to the leaf. why is empty when it does; it never holds key
// material.
func (ck *check) keypair() ([]*x509.Certificate, crypto.Signer, string) {
	if ck.sdErr != nil {
		return nil, nil, ck.sdErr.Error()
	}
	chain, keyPEM, err := ck.sd.keypair(ck.file)
	if err != nil {
		return nil, nil, err.Error()
	}
	key, err := issuer.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Sprintf("reconciler: %s: tls.key holds no private key certops can read", ck.file)
	}
	if !issuer.SamePublicKey(chain[0].PublicKey, key.Public()) {
		return nil, nil, fmt.Sprintf("reconciler: %s: tls.key does not belong to the certificate in tls.crt", ck.file)
	}
	return chain, key, ""
}

// adopt takes over a keypair committed without certops' annotations when
// it matches the spec: it is queued to be rewritten with certops'
// annotations, and its result returned. Otherwise it returns the decision to
// issue instead.
func (p *pass) adopt(ck *check) (*CertResult, spec.Decision) {
	c := ck.c
	chain, key, why := ck.keypair()
	if why != "" {
		return nil, spec.Decision{Action: spec.ActionReissue, Reason: spec.ReasonKeyMismatch, Message: why}
	}
	leaf := chain[0]
	if !p.now.Before(leaf.NotAfter) {
		return nil, spec.Decision{Action: spec.ActionRenew, Reason: spec.ReasonExpired,
			Message: "the committed certificate expired at " + leaf.NotAfter.UTC().Format(time.RFC3339)}
	}
	if why := p.specMismatch(c, leaf, key); why != "" {
		return nil, spec.Decision{Action: spec.ActionReissue, Reason: spec.ReasonSpecChanged,
			Message: "the committed certificate does not match the spec: " + why}
	}
	pk := c.Spec.PrivateKey
	keyPEM, err := issuer.EncodePrivateKey(key, string(pk.Encoding))
	if err != nil {
		return nil, spec.Decision{Action: spec.ActionReissue, Reason: spec.ReasonKeyMismatch, Message: err.Error()}
	}
	renewAt := spec.RenewalTime(c, leaf.NotBefore, leaf.NotAfter)
	it := &issued{cert: c, reason: spec.ReasonAdopted, chainPEM: issuer.EncodeCertificatesPEM(chain),
		keyPEM: keyPEM, caPEM: ck.sd.Data[keyCA], leaf: factsOf(leaf), renewAt: renewAt}
	p.mu.Lock()
	p.issued[c.Key()] = it
	delete(p.r.state, c.Key())
	p.mu.Unlock()
	serial := fmt.Sprintf("%x", leaf.SerialNumber)
	p.r.log.Info("adopted", "cert", c.Key(), "file", ck.file, "issuer", c.Spec.IssuerRef.Name, "serial", serial,
		"not_after", leaf.NotAfter.UTC(), "renew_at", renewAt.UTC())
	return &CertResult{Name: c.Key(), File: c.Source.File, Issuer: c.Spec.IssuerRef.Name, Action: spec.ActionAdopt,
		Reason: spec.ReasonAdopted, Serial: serial, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, RenewAt: renewAt,
		Targets: targetStrings(c.ResolvedTargets(&p.repo.Config))}, spec.Decision{}
}

// specMismatch says how a committed certificate differs from what the
// spec would have certops issue, or "" when it matches: names, subject,
// isCA, key algorithm and size, validity now, and who signed it.
func (p *pass) specMismatch(c *spec.Certificate, leaf *x509.Certificate, key crypto.Signer) string {
	s := &c.Spec
	ks := issuer.KeySpec{Algorithm: string(s.PrivateKey.Algorithm), Size: s.PrivateKey.Size, Encoding: string(s.PrivateKey.Encoding)}
	if !ks.Matches(key) {
		return fmt.Sprintf("the key is not the %s key the spec asks for", ks.WithDefaults().Algorithm)
	}
	if p.now.Before(leaf.NotBefore) {
		return "not valid before " + leaf.NotBefore.UTC().Format(time.RFC3339)
	}
	if isCA := leaf.BasicConstraintsValid && leaf.IsCA; isCA != s.IsCA {
		return fmt.Sprintf("isCA is %t, the spec asks for %t", isCA, s.IsCA)
	}
	ips := make([]string, 0, len(leaf.IPAddresses))
	for _, ip := range leaf.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			ips = append(ips, a.Unmap().String())
		}
	}
	uris := make([]string, 0, len(leaf.URIs))
	for _, u := range leaf.URIs {
		uris = append(uris, u.String())
	}
	wantIPs := make([]string, 0, len(s.IPAddresses))
	for _, ip := range s.IPAddresses {
		if a, err := netip.ParseAddr(ip); err == nil {
			ip = a.Unmap().String()
		}
		wantIPs = append(wantIPs, ip)
	}
	for _, f := range []struct {
		field     string
		got, want []string
	}{
		{"dnsNames", lowerSet(leaf.DNSNames), lowerSet(asciiNames(s.DNSNames))},
		{"ipAddresses", set(ips), set(wantIPs)},
		{"uris", set(uris), set(s.URIs)},
		{"emailAddresses", lowerSet(leaf.EmailAddresses), lowerSet(s.EmailAddresses)},
	} {
		if !slices.Equal(f.got, f.want) {
			return fmt.Sprintf("%s are %v, the spec asks for %v", f.field, f.got, f.want)
		}
	}
	if why := subjectMismatch(s, leaf); why != "" {
		return why
	}
	return p.signerMismatch(c, leaf)
}

func subjectMismatch(s *spec.CertificateSpec, leaf *x509.Certificate) string {
	if s.LiteralSubject != "" {
		want, err := issuer.ParseLiteralSubject(s.LiteralSubject)
		if err != nil {
			return err.Error()
		}
		var got pkix.RDNSequence
		if _, err := asn1.Unmarshal(leaf.RawSubject, &got); err != nil || got.String() != want.String() {
			return fmt.Sprintf("the subject is %q, the spec asks for %q", leaf.Subject.String(), want.String())
		}
		return ""
	}
	cn := leaf.Subject.CommonName
	switch {
	case s.CommonName != "" && cn != s.CommonName:
		return fmt.Sprintf("commonName is %q, the spec asks for %q", cn, s.CommonName)
	case s.CommonName == "" && cn != "" && !isSAN(leaf, cn):
		// Some CAs (ACME) copy a SAN into the common name; anything
		// else is a name the spec does not ask for.
		return fmt.Sprintf("commonName is %q, the spec asks for none", cn)
	}
	var want spec.X509Subject
	if s.Subject != nil {
		want = *s.Subject
	}
	got := leaf.Subject
	for _, f := range []struct {
		field     string
		got, want []string
	}{
		{"organizations", got.Organization, want.Organizations},
		{"countries", got.Country, want.Countries},
		{"organizationalUnits", got.OrganizationalUnit, want.OrganizationalUnits},
		{"localities", got.Locality, want.Localities},
		{"provinces", got.Province, want.Provinces},
		{"streetAddresses", got.StreetAddress, want.StreetAddresses},
		{"postalCodes", got.PostalCode, want.PostalCodes},
	} {
		if g, w := set(f.got), set(f.want); !slices.Equal(g, w) {
			return fmt.Sprintf("subject %s are %v, the spec asks for %v", f.field, g, w)
		}
	}
	if got.SerialNumber != want.SerialNumber {
		return fmt.Sprintf("subject serialNumber is %q, the spec asks for %q", got.SerialNumber, want.SerialNumber)
	}
	return ""
}

func isSAN(leaf *x509.Certificate, name string) bool {
	name = strings.ToLower(name)
	if slices.Contains(lowerSet(leaf.DNSNames), name) || slices.Contains(lowerSet(leaf.EmailAddresses), name) {
		return true
	}
	for _, ip := range leaf.IPAddresses {
		if ip.String() == name {
			return true
		}
	}
	return false
}

// signerMismatch checks who signed the leaf where certops can tell: the CA
// keypair of a ca issuer, or the leaf itself for a selfSigned issuer. ACME,
// Vault and exec issuers are trusted on the other checks alone.
func (p *pass) signerMismatch(c *spec.Certificate, leaf *x509.Certificate) string {
	iss := p.repo.Issuers[c.Spec.IssuerRef.Name]
	if iss == nil {
		return "issuer " + c.Spec.IssuerRef.Name + " not found"
	}
	switch {
	case iss.Spec.CA != nil:
		kp, err := p.caKeypair(iss)
		if err != nil {
			return fmt.Sprintf("cannot read the CA of issuer %s to check the chain: %v", iss.Metadata.Name, err)
		}
		if err := leaf.CheckSignatureFrom(kp.Chain[0]); err != nil {
			return fmt.Sprintf("not signed by the CA of issuer %s", iss.Metadata.Name)
		}
	case iss.Spec.SelfSigned != nil:
		if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
			return "not self-signed, as issuer " + iss.Metadata.Name + " would sign it"
		}
	}
	return ""
}

func set(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

func lowerSet(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(s)
	}
	return set(out)
}
