package reconciler_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"filippo.io/age"
	"sigs.k8s.io/yaml"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/sops"
	"certops.dev/certops/spec"
)

// countingCrypter counts decryptions; it forwards re-keying so the pass
// behaves as with the codec itself.
type countingCrypter struct {
	*sops.Codec
	decrypts atomic.Int64
}

func (c *countingCrypter) DecryptData(file string, ct []byte) (map[string][]byte, error) {
	c.decrypts.Add(1)
	return c.Codec.DecryptData(file, ct)
}

func (c *countingCrypter) Decrypt(file string, ct []byte) ([]byte, error) {
	c.decrypts.Add(1)
	return c.Codec.Decrypt(file, ct)
}

var _ reconciler.Rekeyer = (*countingCrypter)(nil)

// countingIssuer counts signatures (Sign and SignSelf).
type countingIssuer struct {
	inner issuer.Issuer
	n     *atomic.Int64
}

func (c *countingIssuer) Sign(ctx context.Context, req *issuer.Request) (*issuer.Result, error) {
	c.n.Add(1)
	return c.inner.Sign(ctx, req)
}

type countingSelfSigner struct{ countingIssuer }

func (c *countingSelfSigner) SignSelf(ctx context.Context, req *issuer.Request, key crypto.Signer) (*issuer.Result, error) {
	c.n.Add(1)
	return c.inner.(issuer.SelfSigner).SignSelf(ctx, req, key)
}

func countingFactories(n *atomic.Int64) map[string]reconciler.IssuerFactory {
	out := map[string]reconciler.IssuerFactory{}
	for typ, f := range factories() {
		out[typ] = func(ctx context.Context, iss *spec.Issuer, env reconciler.IssuerEnv) (issuer.Issuer, error) {
			b, err := f(ctx, iss, env)
			if err != nil {
				return nil, err
			}
			if _, ok := b.(issuer.SelfSigner); ok {
				return &countingSelfSigner{countingIssuer{b, n}}, nil
			}
			return &countingIssuer{b, n}, nil
		}
	}
	return out
}

// verifyRig is a harness whose reconcilers count decryptions and
// signatures.
type verifyRig struct {
	*harness
	codec *sops.Codec
	signs atomic.Int64
	cr    *countingCrypter
}

func newVerifyRig(t *testing.T) *verifyRig {
	h := newHarness(t)
	trust, err := sops.NewTrust([]string{h.identity.Recipient().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := sops.New(sops.Options{Trust: trust, Identities: sops.Identities{h.identity}})
	if err != nil {
		t.Fatal(err)
	}
	return &verifyRig{harness: h, codec: codec, cr: &countingCrypter{Codec: codec}}
}

// reconciler is a fresh daemon process' worth of state, read from stateDir.
func (v *verifyRig) reconciler(stateDir string) *reconciler.Reconciler {
	v.t.Helper()
	repo, err := gitsource.Open(context.Background(), gitsource.Options{URL: v.url, Branch: "main", CacheDir: v.t.TempDir(),
		Author: gitsource.Identity{Name: "certops", Email: "certops@example.com"}})
	if err != nil {
		v.t.Fatal(err)
	}
	rec, err := reconciler.New(reconciler.Options{Source: repo, Crypter: v.cr, Issuers: countingFactories(&v.signs), StateDir: stateDir})
	if err != nil {
		v.t.Fatal(err)
	}
	return rec
}

// keypairOf decrypts a Secret file of a checkout and returns its leaf and key.
func (v *verifyRig) keypairOf(dir, file string) (*x509.Certificate, crypto.Signer, map[string]any) {
	v.t.Helper()
	plain, err := v.codec.Decrypt(file, []byte(readFile(v.t, filepath.Join(dir, file))))
	if err != nil {
		v.t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(plain, &m); err != nil {
		v.t.Fatal(err)
	}
	data := map[string][]byte{}
	if sd, ok := m["stringData"].(map[string]any); ok {
		for k, val := range sd {
			data[k] = []byte(val.(string))
		}
	}
	if d, ok := m["data"].(map[string]any); ok {
		for k, val := range d {
			b, _ := base64.StdEncoding.DecodeString(val.(string))
			data[k] = b
		}
	}
	chain, err := issuer.ParseCertificatesPEM(data["tls.crt"])
	if err != nil || len(chain) == 0 {
		v.t.Fatalf("%s: tls.crt: %v", file, err)
	}
	key, err := issuer.ParsePrivateKeyPEM(data["tls.key"])
	if err != nil {
		v.t.Fatalf("%s: tls.key: %v", file, err)
	}
	return chain[0], key, m
}

// humanSecret is a keypair as someone would commit it by hand (say, from
// a cert-manager Secret): data in base64, no certops annotations,
// encrypted with the repository's .sops.yaml.
func (v *verifyRig) humanSecret(repo fs.FS, file, name, namespace string, leaf *x509.Certificate, key crypto.Signer) string {
	v.t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		v.t.Fatal(err)
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	k := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	plain := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: %s
  namespace: %s
  annotations:
    cert-manager.io/certificate-name: %s
type: kubernetes.io/tls
data:
  tls.crt: %s
  tls.key: %s
`, name, namespace, strings.TrimSuffix(name, "-tls"), base64.StdEncoding.EncodeToString(crt), base64.StdEncoding.EncodeToString(k))
	enc, err := v.codec.Encrypt(repo, file, []byte(plain))
	if err != nil {
		v.t.Fatal(err)
	}
	return string(enc)
}

// signLeaf issues a leaf for dnsNames with a fresh P-256 key, signed by the
// root CA certops keeps in the checkout dir.
func (v *verifyRig) signLeaf(dir string, dnsNames ...string) (*x509.Certificate, crypto.Signer) {
	v.t.Helper()
	root, rootKey, _ := v.keypairOf(dir, "secrets/platform/root-ca.yaml")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		v.t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{SerialNumber: serial, DNSNames: dnsNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		v.t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		v.t.Fatal(err)
	}
	return leaf, key
}

func certSpec(name, dnsName string) string {
	return fmt.Sprintf(`apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata:
  name: %s
  namespace: web
spec:
  secretName: %s-tls
  dnsNames: [%s]
  privateKey:
    algorithm: ECDSA
  issuerRef:
    name: internal-ca
  targets: []
`, name, name, dnsName)
}

func resultOf(t *testing.T, rep *reconciler.Report, name string) reconciler.CertResult {
	t.Helper()
	for _, r := range rep.Results {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no result for %s in %+v", name, rep.Results)
	return reconciler.CertResult{}
}

// TestAdoptCommittedKeypair: a keypair committed by hand that matches its
// new spec is adopted without an order, in one commit with Reason: Adopted
// and its serial unchanged; one that does not match is issued as usual. A
// second pass over the unchanged repository decrypts nothing.
func TestAdoptCommittedKeypair(t *testing.T) {
	v := newVerifyRig(t)
	rec := v.reconciler(v.stateDir)
	v.pass(rec, false)
	if n := v.signs.Load(); n != 4 {
		t.Fatalf("first pass signed %d certificates, want 4", n)
	}

	work := v.git.Clone(t, "repo.git", "main")
	repoFS := os.DirFS(work)
	leaf, key := v.signLeaf(work, "legacy.a.example.com")
	other, otherKey := v.signLeaf(work, "wrong.a.example.com")
	seeded := v.git.SeedFiles(t, "repo.git", "main", map[string]string{
		"certificates/team-a/legacy.yaml": certSpec("legacy", "legacy.a.example.com"),
		"secrets/web/legacy-tls.yaml":     v.humanSecret(repoFS, "secrets/web/legacy-tls.yaml", "legacy-tls", "web", leaf, key),
		"certificates/team-a/other.yaml":  certSpec("other", "other.a.example.com"),
		"secrets/web/other-tls.yaml":      v.humanSecret(repoFS, "secrets/web/other-tls.yaml", "other-tls", "web", other, otherKey),
	})
	v.signs.Store(0)
	rep := v.pass(rec, false)
	wantSerial := fmt.Sprintf("%x", leaf.SerialNumber)
	if got := resultOf(t, rep, "web/legacy"); got.Action != spec.ActionAdopt || got.Reason != spec.ReasonAdopted || got.Serial != wantSerial {
		t.Errorf("web/legacy: got %s/%s serial %s, want adopt/Adopted serial %s", got.Action, got.Reason, got.Serial, wantSerial)
	}
	if got := resultOf(t, rep, "web/other"); got.Action != spec.ActionReissue || got.Reason != spec.ReasonSpecChanged {
		t.Errorf("web/other (names differ): got %s/%s, want reissue/SpecChanged", got.Action, got.Reason)
	}
	if n := v.signs.Load(); n != 1 {
		t.Errorf("the pass signed %d certificates, want 1 (web/other only; web/legacy is adopted)", n)
	}
	if n := v.git.Run(t, v.git.Dir("repo.git"), "rev-list", "--count", seeded+"..main"); strings.TrimSpace(n) != "1" {
		t.Errorf("%s commits after the seed, want 1", n)
	}
	msg := v.git.Run(t, v.git.Dir("repo.git"), "log", "-1", "--format=%B", "main")
	for _, w := range []string{"adopt 1", "Certificate: web/legacy", "Reason: Adopted", "Serial: " + wantSerial, "Reason: SpecChanged"} {
		if !strings.Contains(msg, w) {
			t.Errorf("commit message lacks %q:\n%s", w, msg)
		}
	}
	after := v.git.Clone(t, "repo.git", "main")
	o, err := spec.ReadObserved("secrets/web/legacy-tls.yaml", []byte(readFile(t, filepath.Join(after, "secrets/web/legacy-tls.yaml"))))
	if err != nil {
		t.Fatal(err)
	}
	if o.Certificate() != "web/legacy" || o.Annotations.Get(spec.AnnotationSerial) != wantSerial || o.Annotations.Get(spec.AnnotationIssuer) != "internal-ca" ||
		o.Annotations.Get(spec.AnnotationSpecHash) == "" || o.RenewAt.IsZero() || !o.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("adopted file's annotations: %v", o.Annotations)
	}
	gotLeaf, gotKey, _ := v.keypairOf(after, "secrets/web/legacy-tls.yaml")
	if gotLeaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 || !issuer.SamePublicKey(gotKey.Public(), key.Public()) {
		t.Errorf("adopted file holds serial %x, want the committed keypair (serial %s)", gotLeaf.SerialNumber, wantSerial)
	}
	if gotOther, _, _ := v.keypairOf(after, "secrets/web/other-tls.yaml"); gotOther.SerialNumber.Cmp(other.SerialNumber) == 0 {
		t.Error("web/other still holds the committed keypair whose names differ from the spec")
	}

	// The next pass decrypts nothing, in this process or a fresh one.
	v.cr.decrypts.Store(0)
	if rep := v.pass(rec, true); rep.Pushed != "" || len(acted(rep)) != 0 {
		t.Fatalf("pass over an unchanged repository acted: pushed %q, %v", rep.Pushed, acted(rep))
	}
	if n := v.cr.decrypts.Load(); n != 0 {
		t.Errorf("pass over an unchanged repository decrypted %d files, want 0", n)
	}
	if rep := v.pass(v.reconciler(v.stateDir), true); rep.Pushed != "" || len(acted(rep)) != 0 {
		t.Fatalf("pass after restart acted: pushed %q, %v", rep.Pushed, acted(rep))
	}
	if n := v.cr.decrypts.Load(); n != 0 {
		t.Errorf("pass after restart decrypted %d files, want 0", n)
	}
	// Without the record every file is checked once (and all check out).
	if rep := v.pass(v.reconciler(t.TempDir()), true); rep.Pushed != "" || len(acted(rep)) != 0 {
		t.Fatalf("pass with a fresh state dir acted: pushed %q, %v", rep.Pushed, acted(rep))
	}
	if n := v.cr.decrypts.Load(); n != 6 {
		t.Errorf("pass with a fresh state dir decrypted %d files, want all 6 once", n)
	}
	if n := v.signs.Load(); n != 1 {
		t.Errorf("the passes after adoption signed %d more, want none", n-1)
	}
}

// TestKeyMismatchReissues: a tls.key that does not belong to its tls.crt
// is caught by the pass (not by plan, which decrypts nothing) and
// re-issued with reason KeyMismatch.
func TestKeyMismatchReissues(t *testing.T) {
	v := newVerifyRig(t)
	rec := v.reconciler(v.stateDir)
	v.pass(rec, false)

	work := v.git.Clone(t, "repo.git", "main")
	const file = "secrets/web/web-tls.yaml"
	leaf, _, m := v.keypairOf(work, file)
	stray, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(stray)
	if err != nil {
		t.Fatal(err)
	}
	m["stringData"].(map[string]any)["tls.key"] = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	plain, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := v.codec.Encrypt(os.DirFS(work), file, plain)
	if err != nil {
		t.Fatal(err)
	}
	v.git.SeedFiles(t, "repo.git", "main", map[string]string{file: string(enc)})

	// plan sees nothing wrong: the annotations are intact.
	tampered := v.git.Clone(t, "repo.git", "main")
	repoFS := os.DirFS(tampered)
	entries, _ := spec.Plan(repoFS, spec.Load(repoFS, spec.LoadOptions{}), time.Now())
	for _, e := range entries {
		if e.Name == "web/web" && e.Decision.Reason != spec.ReasonUpToDate {
			t.Errorf("plan of web/web: %s, want UpToDate (plan cannot decrypt)", e.Decision.Reason)
		}
	}

	v.signs.Store(0)
	rep := v.pass(rec, false)
	if got := acted(rep); !equalMaps(got, map[string]spec.Reason{"web/web": spec.ReasonKeyMismatch}) {
		t.Fatalf("pass acted on %v, want only web/web KeyMismatch", got)
	}
	if n := v.signs.Load(); n != 1 {
		t.Errorf("signed %d certificates, want 1", n)
	}
	msg := v.git.Run(t, v.git.Dir("repo.git"), "log", "-1", "--format=%B", "main")
	for _, w := range []string{"reissue 1", "Certificate: web/web", "Reason: KeyMismatch"} {
		if !strings.Contains(msg, w) {
			t.Errorf("commit message lacks %q:\n%s", w, msg)
		}
	}
	newLeaf, newKey, _ := v.keypairOf(v.git.Clone(t, "repo.git", "main"), file)
	if newLeaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 || !issuer.SamePublicKey(newLeaf.PublicKey, newKey.Public()) {
		t.Errorf("after the re-issue: serial %x (was %x), key matches %t", newLeaf.SerialNumber, leaf.SerialNumber,
			issuer.SamePublicKey(newLeaf.PublicKey, newKey.Public()))
	}
}

// TestVerifyHoldsUndecryptableFile: a Secret file that does not decrypt
// (tampered, or encrypted to recipients the daemon is not one of) holds its
// certificate with an error naming the file; it is not overwritten, nothing
// is ordered for it, and the other certificates are issued.
func TestVerifyHoldsUndecryptableFile(t *testing.T) {
	v := newVerifyRig(t)
	work := v.git.Clone(t, "repo.git", "main")

	// A valid keypair, so only the encryption is wrong.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), DNSNames: []string{"broken.a.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)

	tampered := []byte(v.humanSecret(os.DirFS(work), "secrets/web/broken-tls.yaml", "broken-tls", "web", leaf, key))
	const marker = "ENC[AES256_GCM,data:"
	i := bytes.Index(tampered, []byte(marker)) + len(marker) + 3
	if tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}

	stranger, _ := age.GenerateX25519Identity()
	strangerTrust, _ := sops.NewTrust([]string{stranger.Recipient().String()}, nil)
	strangerCodec, err := sops.New(sops.Options{Trust: strangerTrust})
	if err != nil {
		t.Fatal(err)
	}
	foreignRepo := fstest.MapFS{".sops.yaml": {Data: []byte("creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: " + stranger.Recipient().String() + "\n")}}
	foreignCodec := &verifyRig{harness: v.harness, codec: strangerCodec}
	foreign := foreignCodec.humanSecret(foreignRepo, "secrets/web/foreign-tls.yaml", "foreign-tls", "web", leaf, key)

	files := map[string]string{
		"certificates/team-a/broken.yaml":  certSpec("broken", "broken.a.example.com"),
		"secrets/web/broken-tls.yaml":      string(tampered),
		"certificates/team-a/foreign.yaml": certSpec("foreign", "foreign.a.example.com"),
		"secrets/web/foreign-tls.yaml":     foreign,
	}
	v.git.SeedFiles(t, "repo.git", "main", files)

	rep := v.reconciler(v.stateDir).Pass(context.Background(), false)
	if rep.Error != "" {
		t.Fatalf("pass failed: %s", rep.Error)
	}
	for _, name := range []string{"platform/root-ca", "web/web", "api/api", "api/api-client"} {
		if got := resultOf(t, rep, name); got.Error != "" || got.Reason != spec.ReasonDoesNotExist || got.Serial == "" {
			t.Errorf("%s: %+v, want issued", name, got)
		}
	}
	if n := v.signs.Load(); n != 4 {
		t.Errorf("signed %d certificates, want 4 (nothing for the held ones)", n)
	}
	for name, file := range map[string]string{"web/broken": "secrets/web/broken-tls.yaml", "web/foreign": "secrets/web/foreign-tls.yaml"} {
		if got := resultOf(t, rep, name); !strings.Contains(got.Error, file) {
			t.Errorf("%s: error %q does not name %s", name, got.Error, file)
		}
		found := false
		for _, p := range rep.Problems {
			found = found || p.File == file
		}
		if !found {
			t.Errorf("no problem reported for %s: %+v", file, rep.Problems)
		}
	}
	if rep.Pushed == "" {
		t.Fatal("nothing pushed for the good certificates")
	}
	after := v.git.Clone(t, "repo.git", "main")
	for file, want := range files {
		if got := readFile(t, filepath.Join(after, file)); got != want {
			t.Errorf("%s changed in Git", file)
		}
	}
}
