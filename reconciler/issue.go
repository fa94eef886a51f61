package reconciler

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"time"

	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/spec"
)

// errNoPass is what a long-lived backend's ReadSecret and WriteSecret
// return outside a pass: there is no commit to read or write then.
var errNoPass = errors.New("reconciler: no pass is running")

// running returns the pass running now, or errNoPass.
func (r *Reconciler) running() (*pass, error) {
	if p := r.current.Load(); p != nil {
		return p, nil
	}
	return nil, errNoPass
}

// maxLevels bounds CA chains issued in one pass (root → intermediate →
// leaf is 3); deeper chains finish over several passes.
const maxLevels = 4

// issueAll issues the due certificates: in levels, so that a CA issued in
// this pass signs its leaves in the same pass, and within a level
// concurrently, bounded by Workers and each issuer's maxConcurrent.
//
// The keys of what is in p.issued, those adopted by verify first, go to
// batches in groups of size, sorted, as they are issued; the last group may
// be smaller, and batches is closed at the end. commitAndPush encrypts and
// commits each group while the next is issued, and issuance runs at most
// one group ahead of it: a large pass holds the key material of three
// groups at a time rather than of every certificate.
//
// Each certificate's result is appended to p.rep.Results, which run sized
// for every certificate of the pass and does not touch until issueAll
// returns: a slice of its own, copied there at the end, held both at the
// pass' peak.
func (p *pass) issueAll(due []*spec.Certificate, decisions map[string]spec.Decision, batches chan<- []string, size int) {
	defer close(batches)
	levels := p.levels(due)
	var mu sync.Mutex // guards p.rep.Results and pending
	p.mu.Lock()
	pending := sortedKeys(p.issued) // adopted
	p.mu.Unlock()
	// The adopted keys lead pending, and took no token.
	adopted := len(pending)
	// ahead holds a token per certificate being issued or issued and not
	// yet handed over.
	ahead := make(chan struct{}, size)
	// hand sends full groups of pending; with all, the rest too. It is
	// called with mu held and sends with it released.
	hand := func(all bool) {
		for len(pending) >= size || (all && len(pending) > 0) {
			n := min(size, len(pending))
			group := slices.Clone(pending[:n])
			pending = pending[n:]
			slices.Sort(group)
			tokens := n - min(adopted, n)
			adopted -= n - tokens
			mu.Unlock()
			batches <- group
			for range tokens {
				<-ahead
			}
			mu.Lock()
		}
	}
	perIssuer := map[string]chan struct{}{}
	for name, iss := range p.repo.Issuers {
		if iss.Spec.MaxConcurrent > 0 {
			perIssuer[name] = make(chan struct{}, iss.Spec.MaxConcurrent)
		}
	}
	for _, level := range levels {
		forEach(len(level), p.r.o.Workers, func(i int) {
			c := level[i]
			ahead <- struct{}{}
			res := func() CertResult {
				if sem := perIssuer[c.Spec.IssuerRef.Name]; sem != nil {
					sem <- struct{}{}
					defer func() { <-sem }()
				}
				return p.issueOne(c, decisions[c.Key()])
			}()
			mu.Lock()
			defer mu.Unlock()
			p.rep.Results = append(p.rep.Results, res)
			if res.Error != "" {
				<-ahead
				return
			}
			pending = append(pending, res.Name)
			hand(false)
		})
	}
	mu.Lock()
	hand(true)
	mu.Unlock()
}

// levels orders certificates so that one whose ca issuer reads the Secret
// of another due certificate comes after it.
func (p *pass) levels(due []*spec.Certificate) [][]*spec.Certificate {
	dueBySecret := map[string]*spec.Certificate{}
	for _, c := range due {
		dueBySecret[c.Namespace()+"/"+c.Spec.SecretName] = c
		dueBySecret[c.Spec.SecretName] = c
	}
	level := map[string]int{}
	var depth func(c *spec.Certificate, seen int) int
	depth = func(c *spec.Certificate, seen int) int {
		if l, ok := level[c.Key()]; ok {
			return l
		}
		l := 0
		if iss := p.repo.Issuers[c.Spec.IssuerRef.Name]; iss != nil && iss.Spec.CA != nil && iss.Spec.CA.SecretName != "" && seen < maxLevels {
			if parent := dueBySecret[caSecretKey(iss)]; parent != nil && parent != c {
				l = depth(parent, seen+1) + 1
			}
		}
		level[c.Key()] = min(l, maxLevels-1)
		return level[c.Key()]
	}
	out := make([][]*spec.Certificate, maxLevels)
	for _, c := range due {
		l := depth(c, 0)
		out[l] = append(out[l], c)
	}
	return out
}

// caSecretKey is how a ca issuer names its keypair: namespace/secretName
// when the issuer has a namespace, else the bare secretName.
func caSecretKey(iss *spec.Issuer) string {
	if iss.Metadata.Namespace != "" {
		return iss.Metadata.Namespace + "/" + iss.Spec.CA.SecretName
	}
	return iss.Spec.CA.SecretName
}

func (p *pass) fail(c *spec.Certificate, d spec.Decision, err error) CertResult {
	r := p.r
	key := c.Key()
	p.mu.Lock()
	st := r.state[key]
	if st == nil {
		st = &certState{Fingerprint: p.fingerprint(c)}
		r.state[key] = st
	}
	st.Failures++
	st.LastFailure = p.now
	st.LastError = err.Error()
	switch issuer.ClassOf(err) {
	case issuer.ClassPermanent:
		st.Permanent = true
		st.NextRetry = time.Time{}
	default:
		st.NextRetry = p.now.Add(backoffAfter(st.Failures, r.o.BackoffMin, r.o.BackoffMax))
		if at, ok := issuer.RetryAt(err); ok && at.After(st.NextRetry) {
			st.NextRetry = at
		}
	}
	res := CertResult{Name: key, File: c.Source.File, Issuer: c.Spec.IssuerRef.Name, Action: d.Action,
		Reason: d.Reason, Error: err.Error(), RetryAt: st.NextRetry,
		Targets: targetStrings(c.ResolvedTargets(&p.repo.Config))}
	p.mu.Unlock()
	r.log.Error("issuance failed", "cert", key, "issuer", c.Spec.IssuerRef.Name, "reason", string(d.Reason),
		"error", err, "retry_at", st.NextRetry, "failures", st.Failures)
	return res
}

// issueOne obtains one certificate. The private key is generated (or, with
// rotationPolicy Never, read back from the encrypted file) here and handed
// to the backend only as a CSR, or to a SelfSigner.
func (p *pass) issueOne(c *spec.Certificate, d spec.Decision) CertResult {
	ctx := p.ctx
	iss := p.repo.Issuers[c.Spec.IssuerRef.Name]
	backend, err := p.backend(ctx, iss)
	if err != nil {
		return p.fail(c, d, err)
	}
	pk := c.Spec.PrivateKey
	ks := issuer.KeySpec{Algorithm: string(pk.Algorithm), Size: pk.Size, Encoding: string(pk.Encoding)}
	var key crypto.Signer
	var keyPEM []byte
	// Order journal (journal.go): a remote order left by an earlier run
	// continues with its key.
	rs, remote := backend.(issuer.Resumer)
	remote = remote && p.r.journal != nil
	var prev *resumable
	if remote {
		if prev = p.journalFor(c); prev != nil && ks.Matches(prev.key) {
			key = prev.key
			if keyPEM, err = issuer.EncodePrivateKey(key, ks.Encoding); err != nil {
				return p.fail(c, d, issuer.Permanent(err))
			}
		} else {
			prev = nil
		}
	}
	old := p.observed[c.Key()]
	if key == nil && pk.RotationPolicy == spec.RotationNever && old != nil {
		if kp, err := p.readKeypair(old.File); err == nil && ks.Matches(kp.Key) {
			key = kp.Key
			if keyPEM, err = issuer.EncodePrivateKey(key, ks.Encoding); err != nil {
				return p.fail(c, d, issuer.Permanent(err))
			}
		}
	}
	if key == nil {
		if key, keyPEM, err = issuer.GenerateKey(ks); err != nil {
			return p.fail(c, d, issuer.Permanent(err))
		}
	}
	tmpl := templateFor(c)
	req, err := tmpl.NewRequest(c.Key(), key, c.Spec.Duration.Duration, nil)
	if err != nil {
		return p.fail(c, d, issuer.Permanent(fmt.Errorf("building the request: %w", err)))
	}
	var res *issuer.Result
	if ss, ok := backend.(issuer.SelfSigner); ok {
		res, err = ss.SignSelf(ctx, req, key)
	} else if remote {
		res, err = p.signJournaled(ctx, c, rs, req, keyPEM, prev)
	} else {
		res, err = backend.Sign(ctx, req)
	}
	if err != nil {
		return p.fail(c, d, err)
	}
	leaf := res.Leaf()
	if leaf == nil || !issuer.SamePublicKey(leaf.PublicKey, key.Public()) {
		return p.fail(c, d, issuer.Permanent(errors.New("the issuer returned a certificate for another key")))
	}
	renewAt := spec.RenewalTime(c, leaf.NotBefore, leaf.NotAfter)
	if h := res.RenewalHint; h != nil && h.End.After(h.Start) && h.Start.Before(renewAt) {
		p.mu.Lock()
		renewAt = h.Pick(p.r.o.Rand) // the CA's ARI window wins when earlier
		p.mu.Unlock()
	} else {
		// Spread renewals of certificates issued together: up to 1% of the
		// lifetime (at most an hour) earlier.
		spread := min(leaf.NotAfter.Sub(leaf.NotBefore)/100, time.Hour)
		if spread > 0 {
			p.mu.Lock()
			renewAt = renewAt.Add(-time.Duration(p.r.o.Rand.Int64N(int64(spread))))
			p.mu.Unlock()
		}
	}
	if w := c.Spec.RenewalWindows; len(w) > 0 {
		// Jitter and ARI must not move a renewal out of its windows.
		if next, ok := spec.NextWindow(w, renewAt); ok && next.Before(leaf.NotAfter) {
			renewAt = next
		}
	}
	caPEM := res.CAPEM
	it := &issued{cert: c, reason: d.Reason, chainPEM: res.ChainPEM, keyPEM: keyPEM, caPEM: caPEM,
		leaf: factsOf(leaf), renewAt: renewAt, renewTok: c.Metadata.Annotations[spec.AnnotationRenew]}
	// One key and one serial string, shared by p.issued and the result:
	// both are held for every certificate of the pass.
	name, serial := c.Key(), it.leaf.serial
	p.mu.Lock()
	p.issued[name] = it
	delete(p.r.state, name)
	p.mu.Unlock()
	p.r.log.Info("issued", "cert", name, "issuer", c.Spec.IssuerRef.Name, "reason", string(d.Reason),
		"serial", serial, "not_after", leaf.NotAfter.UTC(), "renew_at", renewAt.UTC())
	return CertResult{Name: name, File: c.Source.File, Issuer: c.Spec.IssuerRef.Name, Action: d.Action,
		Reason: d.Reason, Serial: serial, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, RenewAt: renewAt,
		Targets: targetStrings(c.ResolvedTargets(&p.repo.Config))}
}

// leafFacts are the facts of an issued leaf that a pass reads after
// issuance (annotations, commit trailers, events). A parsed
// x509.Certificate is about 2 KiB, held for every certificate until its
// commit is pushed; these are a tenth of that.
type leafFacts struct {
	serial              string // hex, as the trailers and annotations write it
	notBefore, notAfter time.Time
	commonName          string
	dnsNames, emails    []string
	ips, uris           []string
}

func factsOf(l *x509.Certificate) *leafFacts {
	f := &leafFacts{serial: fmt.Sprintf("%x", l.SerialNumber), notBefore: l.NotBefore, notAfter: l.NotAfter,
		commonName: l.Subject.CommonName, dnsNames: l.DNSNames, emails: l.EmailAddresses}
	for _, ip := range l.IPAddresses {
		f.ips = append(f.ips, ip.String())
	}
	for _, u := range l.URIs {
		f.uris = append(f.uris, u.String())
	}
	return f
}

// backend returns the issuer's backend, building it for this pass (CA
// keypairs change) or reusing a long-lived one (ACME accounts, Vault
// logins) while its spec is unchanged.
func (p *pass) backend(ctx context.Context, iss *spec.Issuer) (issuer.Issuer, error) {
	if iss == nil {
		return nil, issuer.Permanent(errors.New("issuer not found"))
	}
	// One backend per issuer per pass: a ca issuer decrypts its keypair
	// once, not once per certificate.
	p.backendsMu.Lock()
	defer p.backendsMu.Unlock()
	if b, ok := p.backends[iss.Metadata.Name]; ok {
		return b.iss, b.err
	}
	b, err := p.buildBackend(ctx, iss)
	if p.backends == nil {
		p.backends = map[string]backendResult{}
	}
	p.backends[iss.Metadata.Name] = backendResult{b, err}
	return b, err
}

type backendResult struct {
	iss issuer.Issuer
	err error
}

func (p *pass) buildBackend(ctx context.Context, iss *spec.Issuer) (issuer.Issuer, error) {
	typ := iss.Spec.Type()
	factory := p.r.o.Issuers[typ]
	if factory == nil {
		return nil, issuer.Permanent(fmt.Errorf("issuer type %s is not available in this build", typ))
	}
	env := IssuerEnv{Logger: p.r.log.With("issuer", iss.Metadata.Name), ReadSecret: p.readSecret, WriteSecret: p.writeSecret}
	cacheable := typ == "acme" || typ == "vault"
	specJSON, _ := json.Marshal(iss.Spec)
	sum := sha256.Sum256(specJSON)
	cacheKey := iss.Metadata.Name + "/" + hex.EncodeToString(sum[:8])
	if typ == "ca" {
		kp, err := p.caKeypair(iss)
		if err != nil {
			return nil, err
		}
		env.CA = kp
	}
	if cacheable {
		// It outlives this pass: an account key it registers later is
		// read from, and committed with, the pass running then.
		r := p.r
		env.ReadSecret = func(path string) (map[string][]byte, error) {
			cur, err := r.running()
			if err != nil {
				return nil, err
			}
			return cur.readSecret(path)
		}
		env.WriteSecret = func(path string, manifest []byte) error {
			cur, err := r.running()
			if err != nil {
				return err
			}
			return cur.writeSecret(path, manifest)
		}
		p.r.mu.Lock()
		b := p.r.backends[cacheKey]
		p.r.mu.Unlock()
		if b != nil {
			return b, nil
		}
	}
	b, err := factory(ctx, iss, env)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", iss.Metadata.Name, err)
	}
	if cacheable {
		p.r.mu.Lock()
		p.r.backends[cacheKey] = b
		p.r.mu.Unlock()
	}
	return b, nil
}

// caKeypair finds a ca issuer's keypair: issued earlier in this pass, or
// decrypted from the repository.
func (p *pass) caKeypair(iss *spec.Issuer) (*Keypair, error) {
	file := iss.Spec.CA.File
	if file == "" {
		var owner *spec.Certificate
		for _, c := range p.repo.Certificates {
			if c.Spec.SecretName == iss.Spec.CA.SecretName && (iss.Metadata.Namespace == "" || c.Namespace() == iss.Metadata.Namespace) {
				owner = c
				break
			}
		}
		if owner == nil {
			return nil, issuer.Permanent(fmt.Errorf("ca issuer %s: no certificate in the repository writes Secret %s", iss.Metadata.Name, iss.Spec.CA.SecretName))
		}
		p.mu.Lock()
		it := p.issued[owner.Key()]
		p.mu.Unlock()
		if it != nil {
			key, err := issuer.ParsePrivateKeyPEM(it.keyPEM)
			if err != nil {
				return nil, err
			}
			chain, err := issuer.ParseCertificatesPEM(it.chainPEM)
			if err != nil {
				return nil, err
			}
			return &Keypair{Chain: chain, Key: key}, nil
		}
		o := p.observed[owner.Key()]
		if o == nil {
			return nil, issuer.Transient(fmt.Errorf("ca issuer %s: the CA certificate %s has not been issued yet", iss.Metadata.Name, owner.Key()))
		}
		file = o.File
	}
	return p.readKeypair(file)
}

// readKeypair decrypts a Secret file and parses its chain and key.
func (p *pass) readKeypair(file string) (*Keypair, error) {
	data, err := p.readSecret(file)
	if err != nil {
		return nil, err
	}
	sd := &secretData{Data: data}
	chain, keyPEM, err := sd.keypair(file)
	if err != nil {
		return nil, issuer.Permanent(err)
	}
	key, err := issuer.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, issuer.Permanent(fmt.Errorf("%s: %w", file, err))
	}
	return &Keypair{Chain: chain, Key: key}, nil
}

// readSecret decrypts one Secret file of the commit and returns its data.
func (p *pass) readSecret(file string) (map[string][]byte, error) {
	ct, err := fs.ReadFile(p.fsys, file)
	if errors.Is(err, fs.ErrNotExist) {
		if data, ok := p.journalledSecret(file); ok { // journal.go
			return data, nil
		}
	}
	if err != nil {
		return nil, err
	}
	if dd, ok := p.r.o.Crypter.(DataDecrypter); ok {
		data, err := dd.DecryptData(file, ct)
		if err != nil {
			return nil, issuer.Permanent(err)
		}
		return data, nil
	}
	plain, err := p.r.o.Crypter.Decrypt(file, ct)
	if err != nil {
		return nil, issuer.Permanent(err)
	}
	sd, err := parseSecret(file, plain)
	if err != nil {
		return nil, issuer.Permanent(err)
	}
	return sd.Data, nil
}

func (p *pass) writeSecret(path string, manifest []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writes[path] = manifest
	p.journalSecretWrite(path, manifest) // journal.go
	return nil
}

// templateFor maps a Certificate spec onto the issuer package's Template.
func templateFor(c *spec.Certificate) issuer.Template {
	s := &c.Spec
	t := issuer.Template{
		CommonName:     s.CommonName,
		LiteralSubject: s.LiteralSubject,
		DNSNames:       asciiNames(s.DNSNames),
		IPAddresses:    s.IPAddresses,
		URIs:           s.URIs,
		EmailAddresses: s.EmailAddresses,
		IsCA:           s.IsCA,
	}
	for _, u := range s.Usages {
		t.Usages = append(t.Usages, string(u))
	}
	for _, o := range s.OtherNames {
		// Validation checked the OID; a nil one would make Template.Validate
		// name the entry.
		oid, _ := issuer.ParseOID(o.OID)
		t.OtherNames = append(t.OtherNames, issuer.OtherName{OID: oid, Value: o.UTF8Value})
	}
	if sub := s.Subject; sub != nil {
		t.Subject = &issuer.Subject{Organizations: sub.Organizations, Countries: sub.Countries,
			OrganizationalUnits: sub.OrganizationalUnits, Localities: sub.Localities, Provinces: sub.Provinces,
			StreetAddresses: sub.StreetAddresses, PostalCodes: sub.PostalCodes, SerialNumber: sub.SerialNumber}
	}
	if nc := s.NameConstraints; nc != nil {
		conv := func(i *spec.NameConstraintItem) *issuer.NameConstraintItem {
			if i == nil {
				return nil
			}
			return &issuer.NameConstraintItem{DNSDomains: i.DNSDomains, IPRanges: i.IPRanges,
				EmailAddresses: i.EmailAddresses, URIDomains: i.URIDomains}
		}
		t.NameConstraints = &issuer.NameConstraints{Critical: nc.Critical, Permitted: conv(nc.Permitted), Excluded: conv(nc.Excluded)}
	}
	return t
}

func asciiNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		if a, err := spec.ASCIIName(n); err == nil {
			out[i] = a
		} else {
			out[i] = n
		}
	}
	return out
}
