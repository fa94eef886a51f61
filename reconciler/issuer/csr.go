package issuer

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Subject is cert-manager's spec.subject (X509Subject).
type Subject struct {
	Organizations       []string
	Countries           []string
	OrganizationalUnits []string
	Localities          []string
	Provinces           []string
	StreetAddresses     []string
	PostalCodes         []string
	SerialNumber        string
}

// NameConstraints is cert-manager's spec.nameConstraints, for CA
// certificates (RFC 5280 section 4.2.1.10).
type NameConstraints struct {
	Critical  bool
	Permitted *NameConstraintItem
	Excluded  *NameConstraintItem
}

// NameConstraintItem lists the names of one side of a constraint.
type NameConstraintItem struct {
	DNSDomains     []string
	IPRanges       []string // CIDR
	EmailAddresses []string
	URIDomains     []string
}

// Template describes the certificate a CSR asks for, with cert-manager's
// Certificate field names.
type Template struct {
	CommonName string
	Subject    *Subject
	// LiteralSubject, an RFC 4514 string, replaces CommonName and Subject
	// byte for byte (cert-manager's spec.literalSubject).
	LiteralSubject string
	DNSNames       []string
	IPAddresses    []string
	URIs           []string
	EmailAddresses []string
	// OtherNames are otherName SANs with UTF-8 values; certops encodes the
	// subjectAltName extension itself when there are any (see
	// SubjectAltName.Marshal).
	OtherNames      []OtherName
	Usages          []string // cert-manager names; empty means DefaultUsages
	IsCA            bool
	NameConstraints *NameConstraints
}

// parsed is a validated Template.
type parsed struct {
	rawSubject []byte
	subject    pkix.Name
	ips        []net.IP
	uris       []*url.URL
	ku         x509.KeyUsage
	ekus       []x509.ExtKeyUsage
	nc         *x509.Certificate // only the name-constraint fields are set
}

func (t Template) parse() (*parsed, error) {
	var (
		p    parsed
		errs []error
	)
	if t.LiteralSubject != "" {
		if t.CommonName != "" || t.Subject != nil {
			errs = append(errs, errors.New("issuer: literalSubject excludes commonName and subject"))
		}
		seq, err := ParseLiteralSubject(t.LiteralSubject)
		if err != nil {
			errs = append(errs, err)
		} else if p.rawSubject, err = asn1.Marshal(seq); err != nil {
			errs = append(errs, fmt.Errorf("issuer: literalSubject: %w", err))
		}
	} else {
		p.subject.CommonName = t.CommonName
		if s := t.Subject; s != nil {
			p.subject.Organization = s.Organizations
			p.subject.Country = s.Countries
			p.subject.OrganizationalUnit = s.OrganizationalUnits
			p.subject.Locality = s.Localities
			p.subject.Province = s.Provinces
			p.subject.StreetAddress = s.StreetAddresses
			p.subject.PostalCode = s.PostalCodes
			p.subject.SerialNumber = s.SerialNumber
		}
	}
	for _, s := range t.IPAddresses {
		ip := net.ParseIP(s)
		if ip == nil {
			errs = append(errs, fmt.Errorf("issuer: ipAddresses: %q is not an IP address", s))
			continue
		}
		p.ips = append(p.ips, ip)
	}
	for _, s := range t.URIs {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" {
			errs = append(errs, fmt.Errorf("issuer: uris: %q is not an absolute URI", s))
			continue
		}
		p.uris = append(p.uris, u)
	}
	for _, s := range t.EmailAddresses {
		if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
			errs = append(errs, fmt.Errorf("issuer: emailAddresses: %q is not a bare address", s))
		}
	}
	for i, o := range t.OtherNames {
		if _, err := o.marshal(); err != nil {
			errs = append(errs, fmt.Errorf("issuer: otherNames[%d]: %w", i, err))
		}
		if o.Value == "" {
			errs = append(errs, fmt.Errorf("issuer: otherNames[%d] (%s): the value is empty", i, o.OID))
		}
	}
	if len(t.DNSNames)+len(t.IPAddresses)+len(t.URIs)+len(t.EmailAddresses)+len(t.OtherNames) == 0 && t.CommonName == "" && t.LiteralSubject == "" {
		errs = append(errs, errors.New("issuer: the certificate names nothing: set commonName, literalSubject or a SAN"))
	}
	var err error
	p.ku, p.ekus, err = ParseUsages(t.Usages, t.IsCA)
	if err != nil {
		errs = append(errs, err)
	}
	if t.NameConstraints != nil {
		if !t.IsCA {
			errs = append(errs, errors.New("issuer: nameConstraints need isCA: true"))
		}
		p.nc = &x509.Certificate{PermittedDNSDomainsCritical: t.NameConstraints.Critical}
		if it := t.NameConstraints.Permitted; it != nil {
			p.nc.PermittedDNSDomains, p.nc.PermittedEmailAddresses, p.nc.PermittedURIDomains = it.DNSDomains, it.EmailAddresses, it.URIDomains
			p.nc.PermittedIPRanges, err = parseCIDRs(it.IPRanges)
			errs = append(errs, err)
		}
		if it := t.NameConstraints.Excluded; it != nil {
			p.nc.ExcludedDNSDomains, p.nc.ExcludedEmailAddresses, p.nc.ExcludedURIDomains = it.DNSDomains, it.EmailAddresses, it.URIDomains
			p.nc.ExcludedIPRanges, err = parseCIDRs(it.IPRanges)
			errs = append(errs, err)
		}
	}
	return &p, errors.Join(errs...)
}

func parseCIDRs(ss []string) ([]*net.IPNet, error) {
	var (
		out  []*net.IPNet
		errs []error
	)
	for _, s := range ss {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("issuer: nameConstraints ipRanges: %q is not a CIDR", s))
			continue
		}
		out = append(out, n)
	}
	return out, errors.Join(errs...)
}

// Validate reports every problem of t at once.
func (t Template) Validate() error {
	_, err := t.parse()
	return err
}

var (
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidNameConstraints  = asn1.ObjectIdentifier{2, 5, 29, 30}
)

// CSR creates a DER-encoded CSR for t signed by key. Usages, isCA and name
// constraints travel as requested extensions, so CAs that copy extensions
// (openssl -copy_extensions) see them.
func (t Template) CSR(key crypto.Signer) ([]byte, error) {
	p, err := t.parse()
	if err != nil {
		return nil, err
	}
	exts, err := p.extensions(t.IsCA)
	if err != nil {
		return nil, err
	}
	if len(t.OtherNames) > 0 {
		// crypto/x509 cannot write otherNames: encode the whole
		// subjectAltName here; with it in ExtraExtensions crypto/x509
		// leaves out its own.
		// A literalSubject is never empty (ParseLiteralSubject refuses it).
		empty := len(p.rawSubject) == 0 && len(p.subject.ToRDNSequence()) == 0
		san, err := SubjectAltName{DNSNames: t.DNSNames, EmailAddresses: t.EmailAddresses, IPAddresses: p.ips,
			URIs: p.uris, OtherNames: t.OtherNames}.extension(empty)
		if err != nil {
			return nil, err
		}
		exts = append(exts, san)
	}
	tmpl := &x509.CertificateRequest{
		Subject:         p.subject,
		RawSubject:      p.rawSubject,
		DNSNames:        t.DNSNames,
		IPAddresses:     p.ips,
		URIs:            p.uris,
		EmailAddresses:  t.EmailAddresses,
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("issuer: create csr: %w", err)
	}
	return der, nil
}

// NewRequest creates the CSR for t with key and wraps it in a Request for
// the given lifetime, with usages, isCA and replaces filled in.
func (t Template) NewRequest(name string, key crypto.Signer, d time.Duration, replaces *x509.Certificate) (*Request, error) {
	der, err := t.CSR(key)
	if err != nil {
		return nil, err
	}
	r, err := NewRequest(name, der, d)
	if err != nil {
		return nil, err
	}
	r.IsCA = t.IsCA
	r.Usages, r.ExtKeyUsages, _ = ParseUsages(t.Usages, t.IsCA) // already validated by CSR
	r.Replaces = replaces
	return r, nil
}

// usageExtensions caches the encoded extensions of requests without name
// constraints, by usages and isCA: a fleet has a handful of distinct
// combinations, and encoding one costs a throw-away key and certificate.
var usageExtensions = struct {
	sync.Mutex
	m map[string][]pkix.Extension
}{m: map[string][]pkix.Extension{}}

// maxUsageExtensions bounds usageExtensions; past it, encodings are not
// cached.
const maxUsageExtensions = 256

// extensions encodes key usage, extended key usage, basic constraints and
// name constraints by letting crypto/x509 marshal a throw-away certificate
// and copying its extensions: the encoders are unexported, and this keeps
// the DER identical to what crypto/x509 writes into certificates. The
// result is the caller's to append to; the extension values it holds are
// shared and must not be modified.
func (p *parsed) extensions(isCA bool) ([]pkix.Extension, error) {
	if p.nc != nil {
		return p.encodeExtensions(isCA)
	}
	key := fmt.Sprint(p.ku, p.ekus, isCA)
	usageExtensions.Lock()
	exts, ok := usageExtensions.m[key]
	usageExtensions.Unlock()
	if ok {
		return slices.Clone(exts), nil
	}
	exts, err := p.encodeExtensions(isCA)
	if err != nil {
		return nil, err
	}
	usageExtensions.Lock()
	if len(usageExtensions.m) < maxUsageExtensions {
		usageExtensions.m[key] = exts
	}
	usageExtensions.Unlock()
	return slices.Clone(exts), nil
}

func (p *parsed) encodeExtensions(isCA bool) ([]pkix.Extension, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		KeyUsage:              p.ku,
		ExtKeyUsage:           p.ekus,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if p.nc != nil {
		tmpl.PermittedDNSDomainsCritical = p.nc.PermittedDNSDomainsCritical
		tmpl.PermittedDNSDomains, tmpl.ExcludedDNSDomains = p.nc.PermittedDNSDomains, p.nc.ExcludedDNSDomains
		tmpl.PermittedIPRanges, tmpl.ExcludedIPRanges = p.nc.PermittedIPRanges, p.nc.ExcludedIPRanges
		tmpl.PermittedEmailAddresses, tmpl.ExcludedEmailAddresses = p.nc.PermittedEmailAddresses, p.nc.ExcludedEmailAddresses
		tmpl.PermittedURIDomains, tmpl.ExcludedURIDomains = p.nc.PermittedURIDomains, p.nc.ExcludedURIDomains
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issuer: encode extensions: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("issuer: encode extensions: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issuer: encode extensions: %w", err)
	}
	want := []asn1.ObjectIdentifier{oidKeyUsage, oidExtKeyUsage, oidBasicConstraints, oidNameConstraints}
	var out []pkix.Extension
	for _, e := range c.Extensions {
		if slices.ContainsFunc(want, e.Id.Equal) {
			out = append(out, e)
		}
	}
	return out, nil
}

// CertificateTemplate turns a Request into an x509 template for backends
// that sign locally (selfsigned, ca): subject (byte for byte), SANs, the
// lifetime from now, usages and isCA from the Request, name constraints
// copied from the CSR when the request is for a CA, and the CSR's
// subjectAltName extension copied whole when it carries otherNames (which
// crypto/x509 does not parse and would drop). A fresh random 128-bit
// serial is used (CA/B Forum BR 7.1 asks for at least 64 bits of entropy).
func CertificateTemplate(req *Request, now time.Time) (*x509.Certificate, error) {
	if req == nil || req.CSR == nil {
		return nil, Permanent(errors.New("issuer: request has no csr"))
	}
	if req.Duration <= 0 {
		return nil, Permanent(fmt.Errorf("issuer: %s: duration %s must be positive", req.Name, req.Duration))
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("issuer: serial: %w", err)
	}
	csr := req.CSR
	t := &x509.Certificate{
		SerialNumber:          serial,
		RawSubject:            csr.RawSubject,
		DNSNames:              csr.DNSNames,
		IPAddresses:           csr.IPAddresses,
		URIs:                  csr.URIs,
		EmailAddresses:        csr.EmailAddresses,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(req.Duration),
		KeyUsage:              req.Usages,
		ExtKeyUsage:           req.ExtKeyUsages,
		BasicConstraintsValid: true,
		IsCA:                  req.IsCA,
	}
	san, ok, err := csrOtherNamesExtension(csr)
	if err != nil {
		return nil, Permanent(fmt.Errorf("issuer: csr of %s: %w", req.Name, err))
	}
	if ok {
		t.ExtraExtensions = append(t.ExtraExtensions, san)
	}
	if req.IsCA {
		for _, e := range csr.Extensions {
			if e.Id.Equal(oidNameConstraints) {
				t.ExtraExtensions = append(t.ExtraExtensions, e)
			}
		}
	}
	return t, nil
}

// clockSkew backdates notBefore so that peers with a slightly slow clock
// accept a fresh certificate; one minute, as Vault's PKI engine
// (not_before_duration 30s) and step-ca (1m) do, rounded up.
const clockSkew = time.Minute
