package issuer_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"certops.dev/certops/reconciler/issuer"
)

func TestGenerateKey(t *testing.T) {
	tests := []struct {
		spec      issuer.KeySpec
		wantBlock string
		check     func(any) bool
	}{
		{issuer.KeySpec{}, "RSA PRIVATE KEY", func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 2048 }},
		{issuer.KeySpec{Algorithm: issuer.RSA, Size: 3072, Encoding: issuer.PKCS8}, "PRIVATE KEY", func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 3072 }},
		{issuer.KeySpec{Algorithm: issuer.ECDSA}, "EC PRIVATE KEY", func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve.Params().BitSize == 256 }},
		{issuer.KeySpec{Algorithm: issuer.ECDSA, Size: 384, Encoding: issuer.PKCS8}, "PRIVATE KEY", func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve.Params().BitSize == 384 }},
		{issuer.KeySpec{Algorithm: issuer.ECDSA, Size: 521}, "EC PRIVATE KEY", func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve.Params().BitSize == 521 }},
		{issuer.KeySpec{Algorithm: issuer.Ed25519}, "PRIVATE KEY", func(k any) bool { _, ok := k.(ed25519.PrivateKey); return ok }},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%d-%s", tt.spec.Algorithm, tt.spec.Size, tt.spec.Encoding), func(t *testing.T) {
			key, p, err := issuer.GenerateKey(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(key) {
				t.Errorf("key %T does not match spec %+v", key, tt.spec)
			}
			if !tt.spec.Matches(key) {
				t.Errorf("Matches(%+v) = false for the key it generated", tt.spec)
			}
			b, _ := pem.Decode(p)
			if b == nil || b.Type != tt.wantBlock {
				t.Fatalf("PEM block: got %v, want %q", b, tt.wantBlock)
			}
			back, err := issuer.ParsePrivateKeyPEM(p)
			if err != nil {
				t.Fatal(err)
			}
			if !issuer.SamePublicKey(back.Public(), key.Public()) {
				t.Error("parsed key differs from the generated one")
			}
		})
	}
}

func TestKeySpecValidate(t *testing.T) {
	tests := []struct {
		spec issuer.KeySpec
		want []string
	}{
		{issuer.KeySpec{Algorithm: issuer.RSA, Size: 1024}, []string{"RSA needs 2048..8192"}},
		{issuer.KeySpec{Algorithm: issuer.RSA, Size: 16384}, []string{"RSA needs 2048..8192"}},
		{issuer.KeySpec{Algorithm: issuer.ECDSA, Size: 224, Encoding: "DER"}, []string{"ECDSA needs 256, 384 or 521", `encoding "DER"`}},
		{issuer.KeySpec{Algorithm: "DSA"}, []string{`algorithm "DSA"`}},
		{issuer.KeySpec{Algorithm: issuer.RSA, Size: 8192}, nil},
	}
	for _, tt := range tests {
		err := tt.spec.Validate()
		if len(tt.want) == 0 && err != nil {
			t.Errorf("Validate(%+v): got %v, want nil", tt.spec, err)
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%+v): got %v, want an error containing %q", tt.spec, err, w)
			}
		}
	}
}

func TestMatchesRejectsOtherSpecs(t *testing.T) {
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA, Size: 256})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []issuer.KeySpec{{Algorithm: issuer.ECDSA, Size: 384}, {Algorithm: issuer.RSA}, {Algorithm: issuer.Ed25519}} {
		if s.Matches(key) {
			t.Errorf("Matches(%+v) = true for a P-256 key", s)
		}
	}
}

// placeholderKey reads a PEM-shaped placeholder from testdata/: not a key
// (a body of three bytes, or none), kept there so that no key-shaped block
// sits in the test sources.
func placeholderKey(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestParsePrivateKeyPEMErrors(t *testing.T) {
	for _, in := range []string{"", "garbage", placeholderKey(t, "placeholder-rsa-key.pem"), placeholderKey(t, "placeholder-dsa-key.pem")} {
		if _, err := issuer.ParsePrivateKeyPEM([]byte(in)); err == nil || !strings.HasPrefix(err.Error(), "issuer: ") {
			t.Errorf("ParsePrivateKeyPEM(%q): got %v, want an issuer: error", in, err)
		}
	}
}

func FuzzParsePrivateKeyPEM(f *testing.F) {
	for _, s := range []issuer.KeySpec{{Algorithm: issuer.ECDSA}, {Algorithm: issuer.Ed25519}, {Algorithm: issuer.ECDSA, Encoding: issuer.PKCS8}} {
		_, p, err := issuer.GenerateKey(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	f.Add([]byte(placeholderKey(f, "placeholder-empty-key.pem")))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := issuer.ParsePrivateKeyPEM(data)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}

func TestParseUsagesMapsEveryCertManagerName(t *testing.T) {
	// cert-manager's KeyUsage constants (pkg/apis/certmanager/v1/types.go).
	names := []string{"signing", "digital signature", "content commitment", "key encipherment", "key agreement",
		"data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
		"client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
		"ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc"}
	if d := cmp.Diff(sortedCopy(names), issuer.UsageNames()); d != "" {
		t.Errorf("UsageNames (-cert-manager +ours):\n%s", d)
	}
	ku, ekus, err := issuer.ParseUsages(names, false)
	if err != nil {
		t.Fatal(err)
	}
	wantKU := x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment |
		x509.KeyUsageKeyAgreement | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign | x509.KeyUsageCRLSign |
		x509.KeyUsageEncipherOnly | x509.KeyUsageDecipherOnly
	if ku != wantKU {
		t.Errorf("key usage: got %b, want %b", ku, wantKU)
	}
	if len(ekus) != 12 { // s/mime and email protection are one
		t.Errorf("extended key usages: got %d (%v), want 12", len(ekus), ekus)
	}
	ku, ekus, err = issuer.ParseUsages(nil, true)
	if err != nil || ku != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment|x509.KeyUsageCertSign || len(ekus) != 0 {
		t.Errorf("defaults for a CA: got %b %v %v", ku, ekus, err)
	}
	if _, _, err := issuer.ParseUsages([]string{"server auth", "telepathy", "Server Auth"}, false); err == nil ||
		!strings.Contains(err.Error(), `"telepathy"`) || !strings.Contains(err.Error(), `"Server Auth"`) {
		t.Errorf("unknown usages: got %v, want both reported", err)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestParseLiteralSubject(t *testing.T) {
	tests := []struct {
		in   string
		want string // pkix.RDNSequence.String() of the result, which prints RFC 4514 order
	}{
		{"CN=foo,O=bar,C=DE", "CN=foo,O=bar,C=DE"},
		{"CN=a\\,b,OU=x+OU=y", "CN=a\\,b,OU=x+OU=y"},
		{"cn=lower, o=spaced", "CN=lower,O=spaced"},
		{"2.5.4.3=oid", "CN=oid"},
		{"CN=#0c03666f6f,O=x", "CN={0 12 false [102 111 111] [12 3 102 111 111]},O=x"}, // hex BER kept as is (a UTF8String)
		{"CN=caf\\c3\\a9", "CN=café"},
		{"DC=example,DC=test,UID=jdoe", "0.9.2342.19200300.100.1.25=#13076578616d706c65,0.9.2342.19200300.100.1.25=#130474657374,0.9.2342.19200300.100.1.1=#13046a646f65"},
	}
	for _, tt := range tests {
		seq, err := issuer.ParseLiteralSubject(tt.in)
		if err != nil {
			t.Errorf("ParseLiteralSubject(%q): %v", tt.in, err)
			continue
		}
		if got := seq.String(); got != tt.want {
			t.Errorf("ParseLiteralSubject(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "CN", "CN=", "=x", "CN=a,", "FOO=bar", "CN=a\"b", "CN=a\\", "1=x", "CN=#zz", "CN=#0c03666f6fxx"} {
		if _, err := issuer.ParseLiteralSubject(bad); err == nil {
			t.Errorf("ParseLiteralSubject(%q): got nil error, want one", bad)
		}
	}
}

func FuzzParseLiteralSubject(f *testing.F) {
	for _, s := range []string{"CN=foo,O=bar", "CN=a\\,b+OU=c", "1.2.3=#0403616263", "C=DE,ST=Berlin"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seq, err := issuer.ParseLiteralSubject(s)
		if err != nil {
			return
		}
		if len(seq) == 0 {
			t.Fatal("empty sequence without error")
		}
		if _, err := asn1.Marshal(seq); err != nil {
			t.Skip("value not encodable as a printable string") // ASN.1 encoding rules, not the parser
		}
	})
}

func TestTemplateCSR(t *testing.T) {
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := issuer.Template{
		CommonName:     "web",
		Subject:        &issuer.Subject{Organizations: []string{"Example"}, Countries: []string{"DE"}, SerialNumber: "42"},
		DNSNames:       []string{"web.example.test"},
		IPAddresses:    []string{"192.0.2.1", "2001:db8::1"},
		URIs:           []string{"spiffe://example.test/web"},
		EmailAddresses: []string{"ops@example.test"},
		Usages:         []string{"digital signature", "server auth", "client auth"},
		IsCA:           true,
		NameConstraints: &issuer.NameConstraints{Critical: true,
			Permitted: &issuer.NameConstraintItem{DNSDomains: []string{"example.test"}, IPRanges: []string{"192.0.2.0/24"}},
			Excluded:  &issuer.NameConstraintItem{EmailAddresses: []string{"bad.example.test"}, URIDomains: []string{".bad.test"}}},
	}
	req, err := tmpl.NewRequest("t/web", key, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	csr := req.CSR
	got := struct {
		CN, O, C, Serial string
		DNS, IP, URI, E  []string
	}{csr.Subject.CommonName, csr.Subject.Organization[0], csr.Subject.Country[0], csr.Subject.SerialNumber, csr.DNSNames, nil, nil, csr.EmailAddresses}
	for _, ip := range csr.IPAddresses {
		got.IP = append(got.IP, ip.String())
	}
	for _, u := range csr.URIs {
		got.URI = append(got.URI, u.String())
	}
	want := struct {
		CN, O, C, Serial string
		DNS, IP, URI, E  []string
	}{"web", "Example", "DE", "42", tmpl.DNSNames, tmpl.IPAddresses, tmpl.URIs, tmpl.EmailAddresses}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("CSR names (-want +got):\n%s", d)
	}
	// The requested extensions must decode back to what was asked for:
	// sign the request locally and read the certificate.
	c := signLocally(t, req, key)
	if !c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign {
		t.Errorf("isCA/key usage: got %v %b", c.IsCA, c.KeyUsage)
	}
	if d := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, c.ExtKeyUsage); d != "" {
		t.Errorf("ext key usage (-want +got):\n%s", d)
	}
	if !c.PermittedDNSDomainsCritical || fmt.Sprint(c.PermittedDNSDomains, c.PermittedIPRanges, c.ExcludedEmailAddresses, c.ExcludedURIDomains) !=
		"[example.test] [192.0.2.0/24] [bad.example.test] [.bad.test]" {
		t.Errorf("name constraints: got critical=%v %v %v %v %v", c.PermittedDNSDomainsCritical, c.PermittedDNSDomains, c.PermittedIPRanges, c.ExcludedEmailAddresses, c.ExcludedURIDomains)
	}
	// Every extension is also in the CSR itself, for CAs that copy them.
	var oids []string
	for _, e := range csr.Extensions {
		oids = append(oids, e.Id.String())
	}
	for _, want := range []string{"2.5.29.15", "2.5.29.37", "2.5.29.19", "2.5.29.30", "2.5.29.17"} {
		if !strings.Contains(strings.Join(oids, " "), want) {
			t.Errorf("CSR extensions %v lack %s", oids, want)
		}
	}
}

func TestLiteralSubjectIsByteExact(t *testing.T) {
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	req, err := issuer.Template{LiteralSubject: "CN=web,OU=b,OU=a,O=Example,C=DE", DNSNames: []string{"web.example.test"}}.NewRequest("t", key, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := signLocally(t, req, key)
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(c.RawSubject, &seq); err != nil {
		t.Fatal(err)
	}
	if got, want := seq.String(), "CN=web,OU=b,OU=a,O=Example,C=DE"; got != want {
		t.Errorf("subject: got %q, want %q", got, want)
	}
}

func TestTemplateValidateReportsEverything(t *testing.T) {
	err := issuer.Template{CommonName: "x", LiteralSubject: "CN=y", IPAddresses: []string{"nope"}, URIs: []string{"relative"},
		EmailAddresses: []string{"Name <a@b.test>"}, Usages: []string{"flying"},
		NameConstraints: &issuer.NameConstraints{Permitted: &issuer.NameConstraintItem{IPRanges: []string{"10.0.0.0"}}}}.Validate()
	for _, w := range []string{"literalSubject excludes", `"nope"`, `"relative"`, "bare address", `"flying"`, "need isCA", `"10.0.0.0"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate: got %v, want it to mention %q", err, w)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	base := errors.New("boom")
	tests := []struct {
		err  error
		want issuer.Class
	}{
		{base, issuer.ClassTransient},
		{issuer.Transient(base), issuer.ClassTransient},
		{issuer.Permanent(base), issuer.ClassPermanent},
		{fmt.Errorf("wrapped: %w", issuer.RetryAfter(at, base)), issuer.ClassRetryAfter},
	}
	for _, tt := range tests {
		if got := issuer.ClassOf(tt.err); got != tt.want {
			t.Errorf("ClassOf(%v) = %s, want %s", tt.err, got, tt.want)
		}
		if !errors.Is(tt.err, base) {
			t.Errorf("%v does not wrap its cause", tt.err)
		}
	}
	if got, ok := issuer.RetryAt(fmt.Errorf("x: %w", issuer.RetryAfter(at, base))); !ok || !got.Equal(at) {
		t.Errorf("RetryAt: got %v %v, want %v true", got, ok, at)
	}
	if issuer.Permanent(nil) != nil || issuer.Transient(nil) != nil || issuer.RetryAfter(at, nil) != nil {
		t.Error("constructors must return nil for nil")
	}
}

func TestWindowPick(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	w := issuer.Window{Start: start, End: start.Add(24 * time.Hour)}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[int]bool{}
	for range 1000 {
		p := w.Pick(r)
		if p.Before(w.Start) || !p.Before(w.End) {
			t.Fatalf("Pick = %v, outside [%v, %v)", p, w.Start, w.End)
		}
		seen[p.Hour()] = true
	}
	if len(seen) < 20 {
		t.Errorf("Pick covered %d of 24 hours in 1000 draws; want a spread", len(seen))
	}
	if got := (issuer.Window{Start: start, End: start}).Pick(r); !got.Equal(start) {
		t.Errorf("empty window: got %v, want start", got)
	}
}

func TestParseCertificatesPEMRejectsOtherBlocks(t *testing.T) {
	_, p, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := issuer.ParseCertificatesPEM(p); err == nil {
		t.Error("a private key parsed as a certificate chain")
	}
	if _, err := issuer.NewResult([]byte("not pem"), nil); err == nil {
		t.Error("NewResult accepted garbage")
	}
}

func FuzzParseCertificatesPEM(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("junk"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := issuer.ParseCertificatesPEM(data)
		if err == nil {
			for _, c := range certs {
				if c == nil {
					t.Fatal("nil certificate without error")
				}
			}
		}
	})
}

var benchSpecs = []issuer.KeySpec{
	{Algorithm: issuer.RSA, Size: 2048},
	{Algorithm: issuer.RSA, Size: 4096},
	{Algorithm: issuer.ECDSA, Size: 256},
	{Algorithm: issuer.ECDSA, Size: 384},
	{Algorithm: issuer.Ed25519},
}

func benchName(s issuer.KeySpec) string {
	if s.Size == 0 {
		return s.Algorithm
	}
	return fmt.Sprintf("%s-%d", s.Algorithm, s.Size)
}

func BenchmarkGenerateKey(b *testing.B) {
	for _, s := range benchSpecs {
		b.Run(benchName(s), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := issuer.GenerateKey(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCSR(b *testing.B) {
	for _, s := range benchSpecs {
		b.Run(benchName(s), func(b *testing.B) {
			key, _, err := issuer.GenerateKey(s)
			if err != nil {
				b.Fatal(err)
			}
			tmpl := issuer.Template{DNSNames: []string{"bench.example.test"}, Usages: []string{"server auth"}}
			for b.Loop() {
				if _, err := tmpl.CSR(key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// csrUsages decodes the key usage, extended key usages and basic
// constraints a CSR requests, by letting crypto/x509 parse them out of a
// certificate that carries the CSR's extensions.
func csrUsages(t *testing.T, csr *x509.CertificateRequest, key crypto.Signer) (x509.KeyUsage, []x509.ExtKeyUsage, bool) {
	t.Helper()
	c := selfSign(t, &x509.Certificate{SerialNumber: big.NewInt(1), ExtraExtensions: csr.Extensions}, key)
	return c.KeyUsage, c.ExtKeyUsage, c.IsCA
}

// TestCSRUsagesPerTemplate interleaves templates with different usages, so
// that encoded extensions reused across requests would show up in the
// wrong CSR.
func TestCSRUsagesPerTemplate(t *testing.T) {
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		usages []string
		isCA   bool
		ku     x509.KeyUsage
		ekus   []x509.ExtKeyUsage
	}{
		{[]string{"digital signature", "server auth"}, false, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{[]string{"digital signature", "client auth"}, false, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{[]string{"key encipherment", "client auth", "server auth"}, false, x509.KeyUsageKeyEncipherment,
			[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}},
		{[]string{"cert sign"}, true, x509.KeyUsageCertSign, nil},
	}
	for round := range 3 {
		for i, c := range cases {
			tmpl := issuer.Template{DNSNames: []string{fmt.Sprintf("c%d.example.test", i)}, Usages: c.usages, IsCA: c.isCA}
			if round == 1 {
				tmpl.OtherNames = []issuer.OtherName{{OID: issuer.OIDUPN, Value: "u@example.test"}}
			}
			der, err := tmpl.CSR(key)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			ku, ekus, isCA := csrUsages(t, csr, key)
			if ku != c.ku || isCA != c.isCA || !slices.Equal(ekus, c.ekus) {
				t.Errorf("round %d, %v: CSR asks for ku %b ekus %v isCA %v; want %b %v %v", round, c.usages, ku, ekus, isCA, c.ku, c.ekus, c.isCA)
			}
			// One subjectAltName, this template's: with the otherName
			// only in round 1.
			var sans []string
			for _, e := range csr.Extensions {
				if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
					sans = append(sans, string(e.Value))
				}
			}
			if len(sans) != 1 || !strings.Contains(sans[0], tmpl.DNSNames[0]) || strings.Contains(sans[0], "u@example.test") != (round == 1) {
				t.Errorf("round %d, %v: subjectAltName extensions %q", round, c.usages, sans)
			}
		}
	}

	// Concurrent requests with the same usages, each with its own
	// otherName, must not see each other's subjectAltName.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				upn := fmt.Sprintf("u%d-%d@example.test", g, i)
				tmpl := issuer.Template{DNSNames: []string{"c.example.test"}, Usages: cases[0].usages,
					OtherNames: []issuer.OtherName{{OID: issuer.OIDUPN, Value: upn}}}
				der, err := tmpl.CSR(key)
				if err != nil {
					t.Error(err)
					return
				}
				if !bytes.Contains(der, []byte(upn)) {
					t.Errorf("the CSR for %s lacks its otherName", upn)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestEncodeCertificatesPEMSizesExactly: the PEM of one to three
// certificates of every DER length modulo 48 is what encoding/pem writes,
// in a buffer of exactly its length (it is held until the commit).
func TestEncodeCertificatesPEMSizesExactly(t *testing.T) {
	for n := 1; n <= 3; n++ {
		for extra := range 48 {
			var certs []*x509.Certificate
			var want bytes.Buffer
			for i := range n {
				der := bytes.Repeat([]byte{byte(i + 1)}, 600+extra+i*17)
				certs = append(certs, &x509.Certificate{Raw: der})
				if err := pem.Encode(&want, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
					t.Fatal(err)
				}
			}
			got := issuer.EncodeCertificatesPEM(certs)
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("%d certificates, +%d bytes: the PEM differs from encoding/pem's", n, extra)
			}
			if cap(got) != len(got) {
				t.Errorf("%d certificates, +%d bytes: capacity %d for %d bytes", n, extra, cap(got), len(got))
			}
		}
	}
}
