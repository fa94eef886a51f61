package issuer_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"certops.dev/certops/reconciler/issuer"
)

var oidSAN = asn1.ObjectIdentifier{2, 5, 29, 17}

func sanExtension(t testing.TB, exts []pkix.Extension) pkix.Extension {
	t.Helper()
	for _, e := range exts {
		if e.Id.Equal(oidSAN) {
			return e
		}
	}
	t.Fatal("no subjectAltName extension")
	return pkix.Extension{}
}

// goSAN returns the subjectAltName crypto/x509 writes into a CSR for s,
// and whether crypto/x509 reads its own encoding back unchanged (it refuses
// some URIs and non-ASCII names it would write).
func goSAN(t testing.TB, s issuer.SubjectAltName) ([]byte, bool) {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "x"},
		DNSNames: s.DNSNames, EmailAddresses: s.EmailAddresses, IPAddresses: s.IPAddresses, URIs: s.URIs,
	}, testKey)
	if err != nil {
		return nil, false
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, false
	}
	if len(s.DNSNames)+len(s.EmailAddresses)+len(s.IPAddresses)+len(s.URIs) == 0 {
		return nil, true
	}
	return sanExtension(t, csr.Extensions).Value, true
}

var testKey = func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSubjectAltNameEncodingIsGos: without otherNames the encoder writes the
// bytes crypto/x509 writes, so adding an otherName changes nothing else.
func TestSubjectAltNameEncodingIsGos(t *testing.T) {
	s := issuer.SubjectAltName{
		DNSNames:       []string{"a.example.com", "*.b.example.com"},
		EmailAddresses: []string{"ops@example.com"},
		IPAddresses:    []net.IP{net.ParseIP("192.0.2.1"), net.ParseIP("2001:db8::1")},
		URIs:           []*url.URL{mustURL(t, "spiffe://example.com/ns/a/sa/b")},
	}
	got, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := goSAN(t, s)
	if !bytes.Equal(got, want) {
		t.Errorf("encoding:\ngot  %x\nwant %x", got, want)
	}
}

func TestCSRWithOtherNames(t *testing.T) {
	upn := issuer.OtherName{OID: issuer.OIDUPN, Value: "jdoe@corp.example.com"}
	other := issuer.OtherName{OID: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: "ünïcode ✓"}
	tests := []struct {
		name         string
		tmpl         issuer.Template
		wantCritical bool
	}{
		{"with subject and every SAN", issuer.Template{
			CommonName: "web", DNSNames: []string{"web.example.com"}, IPAddresses: []string{"192.0.2.7"},
			URIs: []string{"spiffe://example.com/web"}, EmailAddresses: []string{"web@example.com"},
			OtherNames: []issuer.OtherName{upn, other},
		}, false},
		{"literal subject", issuer.Template{LiteralSubject: "CN=web,O=Example", OtherNames: []issuer.OtherName{upn}}, false},
		{"empty subject makes it critical", issuer.Template{DNSNames: []string{"web.example.com"}, OtherNames: []issuer.OtherName{upn}}, true},
		{"otherName only", issuer.Template{OtherNames: []issuer.OtherName{upn}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := tc.tmpl.NewRequest("test/web", testKey, 48*time.Hour, nil)
			if err != nil {
				t.Fatal(err)
			}
			csr := req.CSR
			if d := cmp.Diff(tc.tmpl.DNSNames, csr.DNSNames); d != "" {
				t.Errorf("csr dnsNames (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.tmpl.EmailAddresses, csr.EmailAddresses); d != "" {
				t.Errorf("csr emailAddresses (-want +got):\n%s", d)
			}
			var ips, uris []string
			for _, ip := range csr.IPAddresses {
				ips = append(ips, ip.String())
			}
			for _, u := range csr.URIs {
				uris = append(uris, u.String())
			}
			if d := cmp.Diff(tc.tmpl.IPAddresses, ips); d != "" {
				t.Errorf("csr ipAddresses (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.tmpl.URIs, uris); d != "" {
				t.Errorf("csr uris (-want +got):\n%s", d)
			}
			n := 0
			for _, e := range csr.Extensions {
				if e.Id.Equal(oidSAN) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("csr has %d subjectAltName extensions, want 1", n)
			}
			ext := sanExtension(t, csr.Extensions)
			if ext.Critical != tc.wantCritical {
				t.Errorf("csr subjectAltName critical: got %v, want %v", ext.Critical, tc.wantCritical)
			}
			s, err := issuer.ParseSubjectAltName(ext.Value)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.tmpl.OtherNames, s.OtherNames); d != "" {
				t.Errorf("csr otherNames (-want +got):\n%s", d)
			}

			cert := signLocally(t, req, testKey)
			got, err := issuer.OtherNames(cert)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.tmpl.OtherNames, got); d != "" {
				t.Errorf("certificate otherNames (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.tmpl.DNSNames, cert.DNSNames); d != "" {
				t.Errorf("certificate dnsNames (-want +got):\n%s", d)
			}
			if ce := sanExtension(t, cert.Extensions); ce.Critical != tc.wantCritical {
				t.Errorf("certificate subjectAltName critical: got %v, want %v", ce.Critical, tc.wantCritical)
			}
		})
	}
}

// TestCSRWithoutOtherNamesKeepsGoSAN: a request without otherNames is
// encoded by crypto/x509 alone, as before.
func TestCSRWithoutOtherNamesKeepsGoSAN(t *testing.T) {
	tmpl := issuer.Template{DNSNames: []string{"web.example.com"}}
	req, err := tmpl.NewRequest("test/web", testKey, 48*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := goSAN(t, issuer.SubjectAltName{DNSNames: tmpl.DNSNames})
	if got := sanExtension(t, req.CSR.Extensions).Value; !bytes.Equal(got, want) {
		t.Errorf("subjectAltName:\ngot  %x\nwant %x", got, want)
	}
	cert := signLocally(t, req, testKey)
	if got, err := issuer.OtherNames(cert); err != nil || got != nil {
		t.Errorf("OtherNames: got %v, %v; want none", got, err)
	}
	// crypto/x509 marks its own SAN critical for an empty subject.
	if e := sanExtension(t, cert.Extensions); !e.Critical {
		t.Error("certificate subjectAltName not critical with an empty subject")
	}
}

func TestTemplateRefusesBadOtherNames(t *testing.T) {
	tests := []struct {
		name string
		o    issuer.OtherName
		want string
	}{
		{"no OID", issuer.OtherName{Value: "x"}, "otherNames[0]: issuer: otherName: type-id"},
		{"empty value", issuer.OtherName{OID: issuer.OIDUPN}, "otherNames[0] (1.3.6.1.4.1.311.20.2.3): the value is empty"},
		{"invalid UTF-8", issuer.OtherName{OID: issuer.OIDUPN, Value: "\xff"}, "value is not valid UTF-8"},
		{"first arc 3", issuer.OtherName{OID: asn1.ObjectIdentifier{3, 1}, Value: "x"}, "otherNames[0]: issuer: otherName 3.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := issuer.Template{DNSNames: []string{"a.example.com"}, OtherNames: []issuer.OtherName{tc.o}}.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseOID(t *testing.T) {
	for _, s := range []string{"1.3.6.1.4.1.311.20.2.3", "2.999.1", "0.39"} {
		oid, err := issuer.ParseOID(s)
		if err != nil || oid.String() != s {
			t.Errorf("ParseOID(%q): got %v, %v; want it back", s, oid, err)
		}
	}
	for _, s := range []string{"", "1", "3.1", "1.40", "1..2", "1.02", "1.-2", "a.b", "1.99999999999999999999"} {
		if oid, err := issuer.ParseOID(s); err == nil {
			t.Errorf("ParseOID(%q): got %v, want an error", s, oid)
		}
	}
}

func TestParseSubjectAltNameRefuses(t *testing.T) {
	mk := func(v any, params string) []byte {
		b, err := asn1.MarshalWithParams(v, params)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	oid := mk(issuer.OIDUPN, "")
	seq := func(names ...asn1.RawValue) []byte { return mk(names, "") }
	other := func(content []byte) asn1.RawValue {
		return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: content}
	}
	tests := []struct {
		name string
		der  []byte
		want string
	}{
		{"not a sequence", mk(1, ""), "parse subjectAltName"},
		{"trailing data", append(seq(), 0), "trailing data"},
		{"universal class name", seq(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagUTF8String, Bytes: []byte("x")}), "class 0"},
		{"short IP", seq(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 7, Bytes: []byte{1, 2, 3}}), "IP address of 3 bytes"},
		{"otherName not constructed", seq(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: oid}), "not constructed"},
		{"otherName without value", seq(other(oid)), "value"},
		{"otherName value implicit", seq(other(append(slices.Clone(oid), mk("x", "utf8,tag:0")...))), "not [0] EXPLICIT"},
		{"otherName IA5 value", seq(other(append(slices.Clone(oid), mk("x", "ia5,explicit,tag:0")...))), "not a UTF8String"},
		{"otherName two values", seq(other(append(slices.Clone(oid), mk(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true,
			Bytes: append(mk("x", "utf8"), mk("y", "utf8")...)}, "")...))), "not one element"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := issuer.ParseSubjectAltName(tc.der)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseSubjectAltName: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Name forms certops does not issue are skipped, not refused.
	rid := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 8, Bytes: oid[2:]}
	s, err := issuer.ParseSubjectAltName(seq(rid))
	if err != nil || len(s.OtherNames)+len(s.DNSNames) != 0 {
		t.Errorf("registeredID: got %+v, %v; want nothing, no error", s, err)
	}
}

// FuzzSubjectAltName encodes random name sets: crypto/x509 must read back
// the same DNS names, email addresses, IP addresses and URIs, and
// ParseSubjectAltName the same otherNames. Without otherNames the bytes must
// be crypto/x509's own.
func FuzzSubjectAltName(f *testing.F) {
	f.Add("a.example.com\n*.b.example.com", "ops@example.com", "spiffe://example.com/a", []byte{4, 192, 0, 2, 1}, "1.3.6.1.4.1.311.20.2.3\n1.2.3", "jdoe@example.com\nünï")
	f.Add("", "", "", []byte{6, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "2.999", "x")
	f.Add("web", "", "https://example.com/p?q=1#f", []byte(nil), "", "")
	f.Fuzz(func(t *testing.T, dns, email, uri string, ipBytes []byte, oids, values string) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, "\n")
		}
		var s issuer.SubjectAltName
		s.DNSNames, s.EmailAddresses = split(dns), split(email)
		for _, u := range split(uri) {
			p, err := url.Parse(u)
			if err != nil {
				return
			}
			s.URIs = append(s.URIs, p)
		}
		// Each IP is a length byte (even: IPv4, odd: IPv6) and its address.
		for len(ipBytes) > 0 {
			n := net.IPv4len
			if ipBytes[0]%2 == 1 {
				n = net.IPv6len
			}
			if len(ipBytes) < 1+n {
				break
			}
			s.IPAddresses = append(s.IPAddresses, net.IP(slices.Clone(ipBytes[1:1+n])))
			ipBytes = ipBytes[1+n:]
		}
		vals := split(values)
		for i, o := range split(oids) {
			oid, err := issuer.ParseOID(o)
			if err != nil {
				return
			}
			v := "v"
			if i < len(vals) {
				v = vals[i]
			}
			s.OtherNames = append(s.OtherNames, issuer.OtherName{OID: oid, Value: v})
		}
		goDER, goOK := goSAN(t, s)
		der, err := s.Marshal()
		if err != nil {
			return // not ASCII, or an otherName value that is not UTF-8
		}
		if !goOK {
			return // crypto/x509 cannot round-trip these names itself
		}
		if len(s.OtherNames) == 0 && goDER != nil && !bytes.Equal(der, goDER) {
			t.Fatalf("encoding differs from crypto/x509's:\ngot  %x\nwant %x", der, goDER)
		}
		csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject:         pkix.Name{CommonName: "x"},
			ExtraExtensions: []pkix.Extension{{Id: oidSAN, Value: der}},
		}, testKey)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(csrDER)
		if err != nil {
			t.Fatalf("crypto/x509 cannot parse the encoding: %v", err)
		}
		if d := cmp.Diff(s.DNSNames, csr.DNSNames); d != "" {
			t.Errorf("dnsNames (-want +got):\n%s", d)
		}
		if d := cmp.Diff(s.EmailAddresses, csr.EmailAddresses); d != "" {
			t.Errorf("emailAddresses (-want +got):\n%s", d)
		}
		ipStrings := func(ips []net.IP) []string {
			var out []string
			for _, ip := range ips {
				out = append(out, ip.String())
			}
			return out
		}
		if d := cmp.Diff(ipStrings(s.IPAddresses), ipStrings(csr.IPAddresses)); d != "" {
			t.Errorf("ipAddresses (-want +got):\n%s", d)
		}
		urlStrings := func(us []*url.URL) []string {
			var out []string
			for _, u := range us {
				out = append(out, u.String())
			}
			return out
		}
		if d := cmp.Diff(urlStrings(s.URIs), urlStrings(csr.URIs)); d != "" {
			t.Errorf("uris (-want +got):\n%s", d)
		}
		back, err := issuer.ParseSubjectAltName(der)
		if err != nil {
			t.Fatalf("ParseSubjectAltName: %v", err)
		}
		if d := cmp.Diff(s.OtherNames, back.OtherNames); d != "" {
			t.Errorf("otherNames (-want +got):\n%s", d)
		}
	})
}
