package ca_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/ca"
	"certops.dev/certops/reconciler/issuer/issuertest"
	"certops.dev/certops/reconciler/issuer/selfsigned"
)

// newRoot bootstraps a root CA through the selfsigned backend, as a user
// would.
func newRoot(t testing.TB, ks issuer.KeySpec, d time.Duration, nc *issuer.NameConstraints) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, _, err := issuer.GenerateKey(ks)
	if err != nil {
		t.Fatal(err)
	}
	req, err := issuer.Template{CommonName: "certops test root", IsCA: true, NameConstraints: nc,
		Usages: []string{"digital signature", "cert sign", "crl sign"}}.NewRequest("t/root", key, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := selfsigned.New(selfsigned.NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	res, err := ss.SignSelf(context.Background(), req, key)
	if err != nil {
		t.Fatal(err)
	}
	return res.Leaf(), key
}

func newCA(t testing.TB, mod func(*ca.Config)) (*ca.Issuer, *x509.Certificate) {
	t.Helper()
	cert, key := newRoot(t, issuer.KeySpec{Algorithm: issuer.ECDSA}, 365*24*time.Hour, nil)
	cfg := ca.NewDefaultConfig()
	cfg.Certificate, cfg.Key = cert, key
	if mod != nil {
		mod(cfg)
	}
	iss, err := ca.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return iss, cert
}

func TestConformance(t *testing.T) {
	issuertest.Run(t, func(t testing.TB) *issuertest.Harness {
		iss, root := newCA(t, nil)
		return &issuertest.Harness{
			Issuer:    iss,
			Roots:     []*x509.Certificate{root},
			DNSName:   func(i int) string { return fmt.Sprintf("host%d.example.test", i) },
			IPAddress: issuertest.LoopbackIP,
			URI:       "spiffe://example.test/ns/default/sa/web",
			Email:     "ops@example.test",
		}
	}, issuertest.Unsupported{})
}

// TestIntermediate signs through an intermediate the root issued, so the
// chain has three links, and checks it with openssl too.
func TestIntermediate(t *testing.T) {
	rootCA, root := newCA(t, nil)
	ikey, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.RSA, Size: 2048})
	if err != nil {
		t.Fatal(err)
	}
	ireq, err := issuer.Template{CommonName: "intermediate", IsCA: true, Usages: []string{"cert sign", "crl sign"}}.NewRequest("t/inter", ikey, 30*24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	ires, err := rootCA.Sign(context.Background(), ireq)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ca.NewDefaultConfig()
	cfg.Certificate, cfg.Key, cfg.Chain = ires.Leaf(), ikey, []*x509.Certificate{root}
	inter, err := ca.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, res := sign(t, inter, issuer.Template{DNSNames: []string{"leaf.example.test"}, Usages: []string{"server auth"}}, time.Hour)
	if len(res.Chain) != 3 {
		t.Fatalf("chain length: got %d, want 3 (leaf, intermediate, root)", len(res.Chain))
	}
	issuertest.VerifyChain(t, res, []*x509.Certificate{root}, x509.ExtKeyUsageServerAuth)
	issuertest.OpenSSLVerify(t, res, []*x509.Certificate{root})
}

func sign(t *testing.T, iss *ca.Issuer, tmpl issuer.Template, d time.Duration) (*issuer.Request, *issuer.Result) {
	t.Helper()
	res, req, err := trySign(iss, tmpl, d)
	if err != nil {
		t.Fatal(err)
	}
	return req, res
}

func trySign(iss *ca.Issuer, tmpl issuer.Template, d time.Duration) (*issuer.Result, *issuer.Request, error) {
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
	if err != nil {
		return nil, nil, err
	}
	req, err := tmpl.NewRequest("t/leaf", key, d, nil)
	if err != nil {
		return nil, nil, err
	}
	res, err := iss.Sign(context.Background(), req)
	return res, req, err
}

func TestURLsAreWritten(t *testing.T) {
	iss, _ := newCA(t, func(c *ca.Config) {
		c.CRLDistributionPoints = []string{"http://crl.example.test/ca.crl"}
		c.OCSPServers = []string{"http://ocsp.example.test"}
		c.IssuingCertificateURLs = []string{"http://ca.example.test/ca.crt"}
	})
	_, res := sign(t, iss, issuer.Template{DNSNames: []string{"a.example.test"}}, time.Hour)
	leaf := res.Leaf()
	got := [][]string{leaf.CRLDistributionPoints, leaf.OCSPServer, leaf.IssuingCertificateURL}
	want := [][]string{{"http://crl.example.test/ca.crl"}, {"http://ocsp.example.test"}, {"http://ca.example.test/ca.crt"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("URLs (-want +got):\n%s", d)
	}
}

func TestRefusals(t *testing.T) {
	cert, key := newRoot(t, issuer.KeySpec{Algorithm: issuer.ECDSA}, 10*24*time.Hour, &issuer.NameConstraints{
		Critical:  true,
		Permitted: &issuer.NameConstraintItem{DNSDomains: []string{"example.test"}},
		Excluded:  &issuer.NameConstraintItem{DNSDomains: []string{"secret.example.test"}},
	})
	cfg := ca.NewDefaultConfig()
	cfg.Certificate, cfg.Key = cert, key
	iss, err := ca.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dns     string
		d       time.Duration
		wantErr string // "" means success
	}{
		{"inside constraints", "www.example.test", time.Hour, ""},
		{"outside permitted", "www.example.org", time.Hour, "outside the CA's name constraints"},
		{"excluded subtree", "db.secret.example.test", time.Hour, "outside the CA's name constraints"},
		{"beyond the CA's notAfter", "www.example.test", 11 * 24 * time.Hour, "beyond the CA's notAfter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := trySign(iss, issuer.Template{DNSNames: []string{tt.dns}}, tt.d)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Sign: got %v, want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Sign: got %v, want an error containing %q", err, tt.wantErr)
			}
			if c := issuer.ClassOf(err); c != issuer.ClassPermanent {
				t.Errorf("class: got %s, want permanent", c)
			}
		})
	}
}

func TestNewValidatesEagerly(t *testing.T) {
	cert, key := newRoot(t, issuer.KeySpec{Algorithm: issuer.ECDSA}, time.Hour, nil)
	other, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
	if err != nil {
		t.Fatal(err)
	}
	leafIss, err := ca.New(&ca.Config{Certificate: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	_, leafRes := sign(t, leafIss, issuer.Template{DNSNames: []string{"leaf.example.test"}}, time.Minute)
	tests := []struct {
		name string
		cfg  *ca.Config
		want string
	}{
		{"nil", nil, "nil config"},
		{"empty", &ca.Config{}, "no CA certificate"},
		{"wrong key", &ca.Config{Certificate: cert, Key: other}, "does not match"},
		{"not a CA", &ca.Config{Certificate: leafRes.Leaf(), Key: key}, "is not a CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// BenchmarkSign signs one leaf per CA key type (the CSR is made once).
func BenchmarkSign(b *testing.B) {
	for _, ks := range benchKeySpecs {
		b.Run(name(ks), func(b *testing.B) {
			cert, key := newRoot(b, ks, 365*24*time.Hour, nil)
			iss, err := ca.New(&ca.Config{Certificate: cert, Key: key})
			if err != nil {
				b.Fatal(err)
			}
			lkey, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
			if err != nil {
				b.Fatal(err)
			}
			req, err := issuer.Template{DNSNames: []string{"bench.example.test"}}.NewRequest("bench", lkey, 24*time.Hour, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if _, err := iss.Sign(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var benchKeySpecs = []issuer.KeySpec{
	{Algorithm: issuer.RSA, Size: 2048},
	{Algorithm: issuer.RSA, Size: 4096},
	{Algorithm: issuer.ECDSA, Size: 256},
	{Algorithm: issuer.ECDSA, Size: 384},
	{Algorithm: issuer.Ed25519},
}

func name(ks issuer.KeySpec) string {
	if ks.Size == 0 {
		return ks.Algorithm
	}
	return fmt.Sprintf("%s-%d", ks.Algorithm, ks.Size)
}

// TestOtherNamesUnderNameConstraints: otherNames survive signing, the CA's
// DNS name constraints still apply beside them, and a certificate that
// names nothing but an otherName (critical subjectAltName, RFC 5280
// 4.2.1.6) is issued although crypto/x509 cannot read its names.
func TestOtherNamesUnderNameConstraints(t *testing.T) {
	cert, key := newRoot(t, issuer.KeySpec{Algorithm: issuer.ECDSA}, 10*24*time.Hour, &issuer.NameConstraints{
		Critical:  true,
		Permitted: &issuer.NameConstraintItem{DNSDomains: []string{"example.test"}},
	})
	cfg := ca.NewDefaultConfig()
	cfg.Certificate, cfg.Key = cert, key
	iss, err := ca.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	upn := []issuer.OtherName{{OID: issuer.OIDUPN, Value: "jdoe@example.test"}}
	tests := []struct {
		name    string
		tmpl    issuer.Template
		wantErr string // "" means success
	}{
		{"inside constraints", issuer.Template{DNSNames: []string{"www.example.test"}, OtherNames: upn}, ""},
		{"outside permitted", issuer.Template{DNSNames: []string{"www.example.org"}, OtherNames: upn}, "outside the CA's name constraints"},
		{"otherName only", issuer.Template{OtherNames: upn, Usages: []string{"digital signature", "client auth"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, err := trySign(iss, tt.tmpl, time.Hour)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || issuer.ClassOf(err) != issuer.ClassPermanent {
					t.Fatalf("Sign: got %v, want a permanent error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign: got %v, want success", err)
			}
			got, err := issuer.OtherNames(res.Leaf())
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(upn, got); d != "" {
				t.Errorf("otherNames (-want +got):\n%s", d)
			}
		})
	}
}
