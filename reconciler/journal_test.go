package reconciler

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"filippo.io/age"

	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/spec"
)

// orderingCA is a fake remote CA for the journal tests: every Sign is an
// order whose URL it reports through OnOrder; with lose set, the answer is
// lost after the CA issued (as when the daemon dies at that moment).
// Resume hands out an order's certificate again, or ErrReorder when the
// order is unknown or for another key.
type orderingCA struct {
	mu      sync.Mutex
	key     *ecdsa.PrivateKey
	orders  map[string]*x509.Certificate
	lose    bool
	signs   int
	resumes []string
}

var _ issuer.Resumer = (*orderingCA)(nil)

func newOrderingCA(t *testing.T) *orderingCA {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &orderingCA{key: k, orders: map[string]*x509.Certificate{}}
}

func (ca *orderingCA) Sign(_ context.Context, req *issuer.Request) (*issuer.Result, error) {
	ca.mu.Lock()
	ca.signs++
	url := fmt.Sprintf("https://ca.test/order/%d", ca.signs)
	lose := ca.lose
	ca.mu.Unlock()
	if req.OnOrder != nil {
		req.OnOrder(url)
	}
	tmpl, err := issuer.CertificateTemplate(req, time.Now())
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, req.CSR.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca.mu.Lock()
	ca.orders[url] = leaf
	ca.mu.Unlock()
	if lose {
		return nil, issuer.Transient(errors.New("connection reset after the CA issued"))
	}
	return &issuer.Result{Chain: []*x509.Certificate{leaf}, ChainPEM: issuer.EncodeCertificatesPEM([]*x509.Certificate{leaf})}, nil
}

func (ca *orderingCA) Resume(_ context.Context, req *issuer.Request, url string) (*issuer.Result, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.resumes = append(ca.resumes, url)
	leaf := ca.orders[url]
	if leaf == nil || !issuer.SamePublicKey(leaf.PublicKey, req.CSR.PublicKey) {
		return nil, fmt.Errorf("order %s: %w", url, issuer.ErrReorder)
	}
	return &issuer.Result{Chain: []*x509.Certificate{leaf}, ChainPEM: issuer.EncodeCertificatesPEM([]*x509.Certificate{leaf})}, nil
}

const journalCert = `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata: {name: %s}
spec:
  dnsNames: [%s]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: remote}
`

type journalWorld struct {
	t      *testing.T
	src    *memSource
	ca     *orderingCA
	state  string
	sealer *AgeSealer
}

func newJournalWorld(t *testing.T, certs map[string]string) *journalWorld {
	files := fstest.MapFS{
		"issuers/remote.yaml": {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: remote}\nspec: {exec: {command: [x]}}\n")},
	}
	for name, dns := range certs {
		files["certificates/"+name+".yaml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(journalCert, name, dns))}
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewAgeSealer([]age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	return &journalWorld{t: t, src: &memSource{commits: []fstest.MapFS{files}, pushed: 1}, ca: newOrderingCA(t),
		state: t.TempDir(), sealer: s}
}

// start is a (re)start of the daemon: a new Reconciler on the same state
// directory. The backoff state of the earlier run is dropped, as a kill -9
// before the end of the pass drops it.
func (w *journalWorld) start() *Reconciler {
	w.t.Helper()
	_ = os.Remove(filepath.Join(w.state, stateFile))
	rec, err := New(Options{Source: w.src, Crypter: plainCrypter{}, StateDir: w.state, Journal: w.sealer,
		Issuers: map[string]IssuerFactory{"exec": func(context.Context, *spec.Issuer, IssuerEnv) (issuer.Issuer, error) { return w.ca, nil }}})
	if err != nil {
		w.t.Fatal(err)
	}
	return rec
}

func (w *journalWorld) entries() []string {
	w.t.Helper()
	des, err := os.ReadDir(filepath.Join(w.state, journalDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, d := range des {
		out = append(out, d.Name())
	}
	return out
}

// committedLeaf returns the certificate of name's Secret in the last
// commit, read from the plaintext the fake crypter stores.
func (w *journalWorld) committedLeaf(name string) *x509.Certificate {
	w.t.Helper()
	head := w.src.commits[len(w.src.commits)-1]
	b, ok := head["secrets/default/"+name+".yaml"]
	if !ok {
		w.t.Fatalf("no Secret for %s in the last commit", name)
	}
	sd, err := parseSecret(name, b.Data)
	if err != nil {
		w.t.Fatal(err)
	}
	chain, _, err := sd.keypair(name)
	if err != nil {
		w.t.Fatal(err)
	}
	return chain[0]
}

// TestJournalResumesTheOrderAfterALostAnswer: the CA issues but the
// answer is lost; the next start resumes the journalled order with the
// journalled key (no second order), commits that very certificate, and the
// entry is gone once the commit is pushed.
func TestJournalResumesTheOrderAfterALostAnswer(t *testing.T) {
	w := newJournalWorld(t, map[string]string{"web": "web.example.test"})
	w.ca.lose = true
	rep := w.start().Pass(context.Background(), true)
	if rep.Failed() != 1 || w.ca.signs != 1 {
		t.Fatalf("first run: %d failures, %d orders; want 1 and 1", rep.Failed(), w.ca.signs)
	}
	if got := w.entries(); len(got) != 1 {
		t.Fatalf("journal after the lost answer: %v, want one entry", got)
	}
	w.ca.lose = false
	rep = w.start().Pass(context.Background(), true)
	if rep.Failed() != 0 || rep.Pushed == "" {
		t.Fatalf("restart: %d failures, pushed %q: %+v", rep.Failed(), rep.Pushed, rep.Results)
	}
	if w.ca.signs != 1 || len(w.ca.resumes) != 1 || w.ca.resumes[0] != "https://ca.test/order/1" {
		t.Errorf("restart: %d orders, resumed %v; want 1 order and order/1 resumed", w.ca.signs, w.ca.resumes)
	}
	if got, want := w.committedLeaf("web").SerialNumber, w.ca.orders["https://ca.test/order/1"].SerialNumber; got.Cmp(want) != 0 {
		t.Errorf("committed serial %x, want the first order's %x", got, want)
	}
	if got := w.entries(); len(got) != 0 {
		t.Errorf("journal after the push: %v, want empty", got)
	}
}

// TestJournalEntryHoldsNoPlaintextKey: the entry written before ordering
// holds the key only sealed; opening it with the identity gives it back.
func TestJournalEntryHoldsNoPlaintextKey(t *testing.T) {
	w := newJournalWorld(t, map[string]string{"web": "web.example.test"})
	w.ca.lose = true
	rec := w.start()
	rec.Pass(context.Background(), true)
	e, err := rec.journal.read("default/web")
	if err != nil {
		t.Fatal(err)
	}
	if e.OrderURL != "https://ca.test/order/1" || e.Issuer != "remote" || e.SpecHash == "" {
		t.Errorf("entry = {order %q, issuer %q, spec hash %q}, want order/1, remote and a hash", e.OrderURL, e.Issuer, e.SpecHash)
	}
	key, _, err := rec.journal.open(e)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(rec.journal.path("default/web"))
	if err != nil {
		t.Fatal(err)
	}
	if leak := plaintextKey(raw, 0); leak != "" {
		t.Errorf("the journal file holds a plaintext key (%s)", leak)
	}
	if !bytes.HasPrefix(e.Sealed, []byte("age-encryption.org/v1\n")) {
		t.Errorf("the sealed part is not an age file: %.30q", e.Sealed)
	}
	scalar, err := key.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, scalar) {
		t.Errorf("the journal file holds the raw private scalar")
	}
	other, _ := age.GenerateX25519Identity()
	if _, err := (&AgeSealer{ids: []age.Identity{other}}).Open(e.Sealed); err == nil {
		t.Errorf("another identity opened the entry")
	}
	if !w.ca.orders["https://ca.test/order/1"].PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Errorf("the sealed key is not the key of the order")
	}
}

// TestJournalSpecChangeDiscardsTheEntry: after a spec edit the journalled
// order is not resumed; a fresh order is placed and the journal ends empty.
func TestJournalSpecChangeDiscardsTheEntry(t *testing.T) {
	w := newJournalWorld(t, map[string]string{"web": "web.example.test"})
	w.ca.lose = true
	w.start().Pass(context.Background(), true)
	w.ca.lose = false
	w.src.edit(map[string]string{"certificates/web.yaml": fmt.Sprintf(journalCert, "web", "www.example.test")})
	rep := w.start().Pass(context.Background(), true)
	if rep.Failed() != 0 || rep.Pushed == "" {
		t.Fatalf("after the edit: %d failures, pushed %q", rep.Failed(), rep.Pushed)
	}
	if len(w.ca.resumes) != 0 || w.ca.signs != 2 {
		t.Errorf("after the edit: resumed %v, %d orders; want none resumed and a second order", w.ca.resumes, w.ca.signs)
	}
	if got := w.committedLeaf("web").DNSNames; len(got) != 1 || got[0] != "www.example.test" {
		t.Errorf("committed names %v, want [www.example.test]", got)
	}
	if got := w.entries(); len(got) != 0 {
		t.Errorf("journal: %v, want empty", got)
	}
}

// TestJournalCorruptEntryIgnored: a torn entry of one certificate is
// logged and ignored; that certificate is ordered afresh and the others
// are issued as usual.
func TestJournalCorruptEntryIgnored(t *testing.T) {
	w := newJournalWorld(t, map[string]string{"web": "web.example.test", "api": "api.example.test"})
	rec := w.start()
	if err := os.MkdirAll(rec.journal.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rec.journal.path("default/web"), []byte(`{"version":1,"certif`), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := rec.Pass(context.Background(), true)
	if rep.Failed() != 0 || rep.Pushed == "" {
		t.Fatalf("%d failures, pushed %q: %+v", rep.Failed(), rep.Pushed, rep.Results)
	}
	if w.ca.signs != 2 || len(w.ca.resumes) != 0 {
		t.Errorf("%d orders, resumed %v; want 2 orders, none resumed", w.ca.signs, w.ca.resumes)
	}
	for _, name := range []string{"web", "api"} {
		w.committedLeaf(name)
	}
	if got := w.entries(); len(got) != 0 {
		t.Errorf("journal: %v, want empty", got)
	}
}

// TestJournalReordersWhenTheOrderIsGone: an order the CA no longer knows
// (ErrReorder) falls back to a fresh order in the same pass.
func TestJournalReordersWhenTheOrderIsGone(t *testing.T) {
	w := newJournalWorld(t, map[string]string{"web": "web.example.test"})
	w.ca.lose = true
	w.start().Pass(context.Background(), true)
	w.ca.lose = false
	delete(w.ca.orders, "https://ca.test/order/1")
	rep := w.start().Pass(context.Background(), true)
	if rep.Failed() != 0 || rep.Pushed == "" {
		t.Fatalf("%d failures, pushed %q: %+v", rep.Failed(), rep.Pushed, rep.Results)
	}
	if len(w.ca.resumes) != 1 || w.ca.signs != 2 {
		t.Errorf("resumed %v, %d orders; want order/1 tried and a second order", w.ca.resumes, w.ca.signs)
	}
	if got := w.entries(); len(got) != 0 {
		t.Errorf("journal: %v, want empty", got)
	}
}

// TestJournalOnlyForResumers: a backend without remote orders writes no
// journal.
func TestJournalOnlyForResumers(t *testing.T) {
	src := &memSource{commits: []fstest.MapFS{{
		"issuers/root.yaml":     {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: remote}\nspec: {exec: {command: [x]}}\n")},
		"certificates/web.yaml": {Data: []byte(fmt.Sprintf(journalCert, "web", "web.example.test"))},
	}}, pushed: 1}
	id, _ := age.GenerateX25519Identity()
	s, _ := NewAgeSealer([]age.Identity{id})
	dir := t.TempDir()
	ca := newOrderingCA(t)
	rec, err := New(Options{Source: src, Crypter: plainCrypter{}, StateDir: dir, Journal: s,
		Issuers: map[string]IssuerFactory{"exec": func(context.Context, *spec.Issuer, IssuerEnv) (issuer.Issuer, error) {
			return signOnly{ca}, nil
		}}})
	if err != nil {
		t.Fatal(err)
	}
	ca.lose = true
	rec.Pass(context.Background(), true)
	if _, err := os.Stat(filepath.Join(dir, journalDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a backend without Resume left a journal (%v)", err)
	}
}

// plaintextKey looks for a PEM private key in b and, up to three levels
// deep, in every base64 run of b (JSON encodes []byte as base64). It
// returns what it found, or "".
func plaintextKey(b []byte, depth int) string {
	if bytes.Contains(b, []byte("PRIVATE KEY")) {
		return fmt.Sprintf("PRIVATE KEY at depth %d", depth)
	}
	if depth == 3 {
		return ""
	}
	for _, run := range base64Run.FindAll(b, -1) {
		if d, err := base64.StdEncoding.DecodeString(string(run)); err == nil {
			if s := plaintextKey(d, depth+1); s != "" {
				return s
			}
		}
	}
	return ""
}

var base64Run = regexp.MustCompile(`[A-Za-z0-9+/]{40,}={0,2}`)

// signOnly hides Resume.
type signOnly struct{ ca *orderingCA }

func (s signOnly) Sign(ctx context.Context, req *issuer.Request) (*issuer.Result, error) {
	return s.ca.Sign(ctx, req)
}
