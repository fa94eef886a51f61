package issuertest

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"certops.dev/certops/reconciler/issuer"
)

// Harness is one backend under test, ready to sign.
type Harness struct {
	Issuer issuer.Issuer
	// Roots are the trust anchors the chain must verify to. Empty means the
	// issued certificate is its own root (self-signed).
	Roots []*x509.Certificate
	// DNSName returns a DNS name the issuer may certify; different i give
	// different names.
	DNSName func(i int) string
	// IPAddress, URI and Email are names the issuer may certify, used unless
	// the matching Unsupported field is set.
	IPAddress string
	URI       string
	Email     string
	// UPN is the user principal name otherName the OtherNames check asks
	// for; default conformance@example.com.
	UPN string
	// Timeout bounds one Sign call; default 2 minutes (ACME polls with 5 s
	// back-offs).
	Timeout time.Duration
}

// Factory builds the harness; it registers its own cleanup on t.
type Factory func(t testing.TB) *Harness

// Unsupported lists the checks a backend opts out of, with the reason in a
// comment where it is used.
type Unsupported struct {
	IPAddresses    bool
	URIs           bool
	EmailAddresses bool
	// OtherNames: the CA cannot carry otherName SANs.
	OtherNames bool
	// Duration: the CA decides the lifetime (ACME profiles).
	Duration bool
	// DurationDays: the CA only honours whole days (openssl x509 -days).
	DurationDays bool
	// Usages: the CA sets its own key usages.
	Usages bool
	// IsCA: the backend only issues leaf certificates.
	IsCA bool
	// Ed25519 and RSA keys.
	Ed25519 bool
	RSA     bool
	// Concurrency is the number of parallel Sign calls; default 4.
	Concurrency int
}

// Run runs every conformance check against the backend f builds.
func Run(t *testing.T, f Factory, u Unsupported) {
	h := f(t)
	if h.UPN == "" {
		h.UPN = "conformance@example.com"
	}
	if h.Timeout == 0 {
		h.Timeout = 2 * time.Minute
	}
	if u.Concurrency == 0 {
		u.Concurrency = 4
	}
	s := &suite{h: h, u: u}
	t.Run("SANsMatchRequest", s.sans)
	t.Run("OtherNames", s.otherNames)
	t.Run("ChainVerifiesToCA", s.chain)
	t.Run("KeyTypes", s.keyTypes)
	t.Run("UsagesMatch", s.usages)
	t.Run("Duration", s.duration)
	t.Run("IsCA", s.isCA)
	t.Run("CancelledContextReturnsPromptly", s.cancelled)
	t.Run("ConcurrentSign", s.concurrent)
}

type suite struct {
	h *Harness
	u Unsupported
}

// Sign calls the issuer, through SelfSigner when it has that capability.
func Sign(ctx context.Context, iss issuer.Issuer, req *issuer.Request, key crypto.Signer) (*issuer.Result, error) {
	if ss, ok := iss.(issuer.SelfSigner); ok {
		return ss.SignSelf(ctx, req, key)
	}
	return iss.Sign(ctx, req)
}

func (s *suite) issue(t testing.TB, tmpl issuer.Template, ks issuer.KeySpec, d time.Duration) (*issuer.Request, *issuer.Result) {
	t.Helper()
	key, _, err := issuer.GenerateKey(ks)
	if err != nil {
		t.Fatal(err)
	}
	req, err := tmpl.NewRequest("conformance/"+t.Name(), key, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	res, err := Sign(ctx, s.h.Issuer, req, key)
	if err != nil {
		t.Fatalf("Sign: %v (class %s)", err, issuer.ClassOf(err))
	}
	if len(res.Chain) == 0 {
		t.Fatal("Sign returned an empty chain")
	}
	if !issuer.SamePublicKey(res.Leaf().PublicKey, key.Public()) {
		t.Fatal("the leaf's public key is not the CSR's")
	}
	parsed, err := issuer.ParseCertificatesPEM(res.ChainPEM)
	if err != nil {
		t.Fatalf("ChainPEM: %v", err)
	}
	if len(parsed) != len(res.Chain) || !parsed[0].Equal(res.Leaf()) {
		t.Fatalf("ChainPEM has %d certificates, Chain %d, or a different leaf", len(parsed), len(res.Chain))
	}
	return req, res
}

func (s *suite) basic(i int) issuer.Template {
	return issuer.Template{DNSNames: []string{s.h.DNSName(i)}, Usages: []string{"digital signature", "key encipherment", "server auth"}}
}

func (s *suite) sans(t *testing.T) {
	tmpl := s.basic(1)
	tmpl.DNSNames = append(tmpl.DNSNames, s.h.DNSName(2))
	if !s.u.IPAddresses {
		tmpl.IPAddresses = []string{s.h.IPAddress}
	}
	if !s.u.URIs {
		tmpl.URIs = []string{s.h.URI}
	}
	if !s.u.EmailAddresses {
		tmpl.EmailAddresses = []string{s.h.Email}
	}
	_, res := s.issue(t, tmpl, issuer.KeySpec{Algorithm: issuer.ECDSA}, 48*time.Hour)
	leaf := res.Leaf()
	type sans struct{ DNS, IP, URI, Email []string }
	got := sans{DNS: sorted(leaf.DNSNames), Email: leaf.EmailAddresses}
	for _, ip := range leaf.IPAddresses {
		got.IP = append(got.IP, ip.String())
	}
	for _, u := range leaf.URIs {
		got.URI = append(got.URI, u.String())
	}
	want := sans{DNS: sorted(tmpl.DNSNames), IP: tmpl.IPAddresses, URI: tmpl.URIs, Email: tmpl.EmailAddresses}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("SANs (-want +got):\n%s", d)
	}
}

// otherNames asks for a UPN otherName beside a DNS name and reads it back
// from the leaf twice: with issuer.OtherNames and from what `openssl x509
// -text` prints, so an encoding only certops can read does not pass.
func (s *suite) otherNames(t *testing.T) {
	if s.u.OtherNames {
		t.Log("opted out: the CA cannot carry otherName SANs")
		return
	}
	tmpl := s.basic(23)
	want := []issuer.OtherName{{OID: issuer.OIDUPN, Value: s.h.UPN}}
	tmpl.OtherNames = want
	_, res := s.issue(t, tmpl, issuer.KeySpec{Algorithm: issuer.ECDSA}, 48*time.Hour)
	leaf := res.Leaf()
	got, err := issuer.OtherNames(leaf)
	if err != nil {
		t.Fatalf("OtherNames: %v", err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("otherNames (-want +got):\n%s", d)
	}
	if d := cmp.Diff(tmpl.DNSNames, leaf.DNSNames); d != "" {
		t.Errorf("dnsNames beside the otherName (-want +got):\n%s", d)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "leaf.pem")
	if err := os.WriteFile(p, issuer.EncodeCertificatesPEM(res.Chain[:1]), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(findOpenSSL(t), "x509", "-in", p, "-text", "-noout").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509 -text: %v\n%s", err, out)
	}
	// OpenSSL 3 prints the UPN otherName as "othername: UPN::<value>" in
	// the comma-separated SAN line.
	line := "othername: UPN::" + s.h.UPN
	found := false
	for _, l := range strings.Split(string(out), "\n") {
		for _, n := range strings.Split(l, ",") {
			if strings.TrimSpace(n) == line {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("openssl x509 -text does not print %q; it prints:\n%s", line, out)
	}
	VerifyChain(t, res, s.h.Roots, x509.ExtKeyUsageServerAuth)
}

func (s *suite) chain(t *testing.T) {
	_, res := s.issue(t, s.basic(3), issuer.KeySpec{Algorithm: issuer.ECDSA}, 48*time.Hour)
	VerifyChain(t, res, s.h.Roots, x509.ExtKeyUsageServerAuth)
	OpenSSLVerify(t, res, s.h.Roots)
}

func (s *suite) keyTypes(t *testing.T) {
	specs := []issuer.KeySpec{
		{Algorithm: issuer.RSA, Size: 2048},
		{Algorithm: issuer.ECDSA, Size: 256},
		{Algorithm: issuer.ECDSA, Size: 384},
		{Algorithm: issuer.Ed25519},
	}
	for i, ks := range specs {
		name := ks.Algorithm
		if ks.Size > 0 {
			name = fmt.Sprintf("%s-%d", ks.Algorithm, ks.Size)
		}
		t.Run(name, func(t *testing.T) {
			if (ks.Algorithm == issuer.Ed25519 && s.u.Ed25519) || (ks.Algorithm == issuer.RSA && s.u.RSA) {
				t.Logf("opted out: %s keys", ks.Algorithm)
				return
			}
			_, res := s.issue(t, s.basic(10+i), ks, 48*time.Hour)
			VerifyChain(t, res, s.h.Roots, x509.ExtKeyUsageServerAuth)
		})
	}
}

func (s *suite) usages(t *testing.T) {
	if s.u.Usages {
		t.Log("opted out: the CA sets its own usages")
		return
	}
	tmpl := s.basic(20)
	tmpl.Usages = []string{"digital signature", "key encipherment", "server auth", "client auth"}
	req, res := s.issue(t, tmpl, issuer.KeySpec{Algorithm: issuer.RSA}, 48*time.Hour)
	leaf := res.Leaf()
	if leaf.KeyUsage != req.Usages {
		t.Errorf("key usage: got %b, want %b", leaf.KeyUsage, req.Usages)
	}
	if d := cmp.Diff(sortedEKU(req.ExtKeyUsages), sortedEKU(leaf.ExtKeyUsage)); d != "" {
		t.Errorf("extended key usage (-want +got):\n%s", d)
	}
}

func (s *suite) duration(t *testing.T) {
	if s.u.Duration {
		t.Log("opted out: the CA decides the lifetime")
		return
	}
	want := 50 * time.Hour
	if s.u.DurationDays {
		want = 72 * time.Hour
	}
	_, res := s.issue(t, s.basic(21), issuer.KeySpec{Algorithm: issuer.ECDSA}, want)
	leaf := res.Leaf()
	got := leaf.NotAfter.Sub(leaf.NotBefore)
	// Backends backdate notBefore by a little for clock skew; allow up to
	// 5 minutes of it, and the second-granularity of the encoding.
	if got < want-time.Second || got > want+5*time.Minute {
		t.Errorf("lifetime: got %s, want %s (+ up to 5m backdating)", got, want)
	}
}

func (s *suite) isCA(t *testing.T) {
	if s.u.IsCA {
		t.Log("opted out: the backend issues leaf certificates only")
		return
	}
	tmpl := issuer.Template{CommonName: "conformance intermediate", DNSNames: []string{s.h.DNSName(22)}, IsCA: true,
		Usages: []string{"digital signature", "cert sign", "crl sign"}}
	_, res := s.issue(t, tmpl, issuer.KeySpec{Algorithm: issuer.ECDSA}, 48*time.Hour)
	if leaf := res.Leaf(); !leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Errorf("isCA: got IsCA=%v BasicConstraintsValid=%v, want true, true", leaf.IsCA, leaf.BasicConstraintsValid)
	}
	VerifyChain(t, res, s.h.Roots, x509.ExtKeyUsageAny)
}

// promptly bounds how long a cancelled Sign may take. It is a hang guard,
// not a speed assertion: a backend that ignores ctx blocks for its full
// network timeout or forever.
const promptly = 20 * time.Second

func (s *suite) cancelled(t *testing.T) {
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"before", "during"} {
		t.Run(mode, func(t *testing.T) {
			req, err := s.basic(30).NewRequest("conformance/cancel", key, 48*time.Hour, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if mode == "before" {
				cancel()
			}
			done := make(chan error, 1)
			go func() {
				_, err := Sign(ctx, s.h.Issuer, req, key)
				done <- err
			}()
			if mode == "during" {
				// Cancel while the backend is at work (or already done: a
				// fast local signer may finish first, which is fine).
				time.Sleep(10 * time.Millisecond)
				cancel()
			}
			select {
			case err := <-done:
				if mode == "before" && err == nil {
					t.Fatal("Sign with a cancelled context succeeded; want an error")
				}
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("Sign after cancel: got %v, want an error wrapping context.Canceled", err)
				}
				if err != nil && issuer.ClassOf(err) == issuer.ClassPermanent {
					t.Errorf("cancellation classified permanent; want transient")
				}
			case <-time.After(promptly):
				t.Fatalf("Sign did not return within %s of cancellation", promptly)
			}
			cancel()
		})
	}
}

func (s *suite) concurrent(t *testing.T) {
	n := s.u.Concurrency
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
			if err != nil {
				errs[i] = err
				return
			}
			name := s.h.DNSName(40 + i)
			req, err := s.basic(40+i).NewRequest(fmt.Sprintf("conformance/concurrent-%d", i), key, 48*time.Hour, nil)
			if err != nil {
				errs[i] = err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
			defer cancel()
			res, err := Sign(ctx, s.h.Issuer, req, key)
			switch {
			case err != nil:
				errs[i] = err
			case !issuer.SamePublicKey(res.Leaf().PublicKey, key.Public()):
				errs[i] = errors.New("leaf has another request's key")
			case !slices.Equal(res.Leaf().DNSNames, []string{name}):
				errs[i] = fmt.Errorf("leaf names %v, want [%s]", res.Leaf().DNSNames, name)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Sign %d: %v", i, err)
		}
	}
}

// VerifyChain checks res with crypto/x509: the leaf verifies through the
// returned intermediates to roots (or to itself when roots is empty) for eku.
func VerifyChain(t testing.TB, res *issuer.Result, roots []*x509.Certificate, eku x509.ExtKeyUsage) {
	t.Helper()
	pool := x509.NewCertPool()
	inter := x509.NewCertPool()
	if len(roots) == 0 {
		pool.AddCert(res.Leaf())
	}
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range res.Chain[1:] {
		inter.AddCert(c)
	}
	if _, err := res.Leaf().Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
		t.Errorf("chain does not verify to the CA: %v", err)
	}
	if len(res.CAPEM) > 0 {
		ca, err := issuer.ParseCertificatesPEM(res.CAPEM)
		if err != nil {
			t.Errorf("CAPEM: %v", err)
		} else if len(roots) > 0 && !slices.ContainsFunc(roots, ca[len(ca)-1].Equal) && !slices.ContainsFunc(res.Chain, ca[len(ca)-1].Equal) {
			t.Errorf("CAPEM names %q, which is neither a trust anchor nor in the chain", ca[len(ca)-1].Subject)
		}
	}
}

// OpenSSLVerify runs `openssl verify` on the leaf with the chain's other
// certificates as untrusted intermediates and roots (or the leaf itself) as
// the trust anchors.
func OpenSSLVerify(t testing.TB, res *issuer.Result, roots []*x509.Certificate) {
	t.Helper()
	openssl := findOpenSSL(t)
	dir := t.TempDir()
	write := func(name string, certs []*x509.Certificate) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, issuer.EncodeCertificatesPEM(certs), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if len(roots) == 0 {
		roots = res.Chain[:1]
	}
	args := []string{"verify", "-CAfile", write("roots.pem", roots)}
	if len(res.Chain) > 1 {
		args = append(args, "-untrusted", write("inter.pem", res.Chain[1:]))
	}
	args = append(args, write("leaf.pem", res.Chain[:1]))
	out, err := exec.Command(openssl, args...).CombinedOutput()
	if err != nil {
		t.Errorf("openssl verify: %v\n%s", err, out)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func sortedEKU(s []x509.ExtKeyUsage) []x509.ExtKeyUsage {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// LoopbackIP is the IP SAN harnesses on loopback use.
var LoopbackIP = net.IPv4(127, 0, 0, 1).String()

// findOpenSSL finds Debian's openssl. It does not use package e2e/peer so
// that backend unit tests do not compile every peer starter's dependencies.
func findOpenSSL(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("peer openssl not found on PATH: run `make deps` (scripts/install-deps.sh) first")
	}
	return p
}
