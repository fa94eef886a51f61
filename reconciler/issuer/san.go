package issuer

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// OtherName is one otherName SAN with a UTF-8 string value (cert-manager's
// spec.otherNames), for example a Microsoft user principal name (OIDUPN).
type OtherName struct {
	OID   asn1.ObjectIdentifier
	Value string
}

// OIDUPN is the Microsoft user principal name otherName type
// (szOID_NT_PRINCIPAL_NAME).
var OIDUPN = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}

// ParseOID parses a dotted OID such as "1.3.6.1.4.1.311.20.2.3".
func ParseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for p := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (p != "0" && p[0] == '0') {
			return nil, fmt.Errorf("issuer: %q is not a dotted OID", s)
		}
		oid = append(oid, n)
	}
	// X.660: the first arc is 0, 1 or 2; below 2 the second is at most 39.
	if len(oid) < 2 || oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, fmt.Errorf("issuer: %q is not a dotted OID", s)
	}
	return oid, nil
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// GeneralName tags, RFC 5280 section 4.2.1.6.
const (
	tagOtherName = 0
	tagEmail     = 1
	tagDNS       = 2
	tagURI       = 6
	tagIP        = 7
)

// SubjectAltName is the content of a subjectAltName extension as far as
// certops issues it.
type SubjectAltName struct {
	DNSNames       []string
	EmailAddresses []string
	IPAddresses    []net.IP
	URIs           []*url.URL
	OtherNames     []OtherName
}

// Marshal encodes the GeneralNames of a subjectAltName extension (RFC 5280
// section 4.2.1.6). DNS names, email addresses, IP addresses and URIs come
// in crypto/x509's order and encoding (so without otherNames the bytes equal
// what crypto/x509 writes); each otherName follows as
// [0] { type-id OID, [0] EXPLICIT UTF8String }. crypto/x509 cannot write
// otherNames, which is why certops encodes the extension itself.
func (s SubjectAltName) Marshal() ([]byte, error) {
	var names []asn1.RawValue
	ia5 := func(field, v string, tag int) error {
		for i := 0; i < len(v); i++ {
			if v[i] >= utf8.RuneSelf {
				return fmt.Errorf("issuer: subjectAltName: %s %q is not ASCII (IA5String)", field, v)
			}
		}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, Bytes: []byte(v)})
		return nil
	}
	for _, n := range s.DNSNames {
		if err := ia5("dnsName", n, tagDNS); err != nil {
			return nil, err
		}
	}
	for _, e := range s.EmailAddresses {
		if err := ia5("emailAddress", e, tagEmail); err != nil {
			return nil, err
		}
	}
	for _, ip := range s.IPAddresses {
		b := ip.To4()
		if b == nil {
			b = ip
		}
		if len(b) != net.IPv4len && len(b) != net.IPv6len {
			return nil, fmt.Errorf("issuer: subjectAltName: IP address of %d bytes", len(ip))
		}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagIP, Bytes: b})
	}
	for _, u := range s.URIs {
		if err := ia5("uri", u.String(), tagURI); err != nil {
			return nil, err
		}
	}
	for _, o := range s.OtherNames {
		v, err := o.marshal()
		if err != nil {
			return nil, err
		}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagOtherName, IsCompound: true, Bytes: v})
	}
	der, err := asn1.Marshal(names)
	if err != nil {
		return nil, fmt.Errorf("issuer: subjectAltName: %w", err)
	}
	return der, nil
}

// marshal returns the content octets of the otherName: type-id, then the
// value as [0] EXPLICIT UTF8String.
func (o OtherName) marshal() ([]byte, error) {
	if len(o.OID) < 2 {
		return nil, fmt.Errorf("issuer: otherName: type-id %q is not an OID", o.OID.String())
	}
	if !utf8.ValidString(o.Value) {
		return nil, fmt.Errorf("issuer: otherName %s: value is not valid UTF-8", o.OID)
	}
	oid, err := asn1.Marshal(o.OID)
	if err != nil {
		return nil, fmt.Errorf("issuer: otherName %s: %w", o.OID, err)
	}
	val, err := asn1.MarshalWithParams(o.Value, "utf8,explicit,tag:0")
	if err != nil {
		return nil, fmt.Errorf("issuer: otherName %s: %w", o.OID, err)
	}
	return append(oid, val...), nil
}

// extension wraps the encoded names in a subjectAltName extension, critical
// when the subject is empty (RFC 5280 section 4.2.1.6: "If the subject field
// contains an empty sequence, ... the subjectAltName extension ... MUST be
// critical").
func (s SubjectAltName) extension(emptySubject bool) (pkix.Extension, error) {
	der, err := s.Marshal()
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: oidSubjectAltName, Critical: emptySubject, Value: der}, nil
}

// ParseSubjectAltName parses the value of a subjectAltName extension. It
// reads the name forms certops issues (DNS, email, IP, URI and otherNames
// with a UTF8String value) and skips the others (x400Address,
// directoryName, ediPartyName, registeredID). An otherName whose value is
// not a UTF8String is an error.
func ParseSubjectAltName(der []byte) (*SubjectAltName, error) {
	var names []asn1.RawValue
	rest, err := asn1.Unmarshal(der, &names)
	if err != nil {
		return nil, fmt.Errorf("issuer: parse subjectAltName: %w", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("issuer: parse subjectAltName: trailing data")
	}
	var s SubjectAltName
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific {
			return nil, fmt.Errorf("issuer: parse subjectAltName: GeneralName of class %d", n.Class)
		}
		switch n.Tag {
		case tagOtherName:
			o, err := parseOtherName(n)
			if err != nil {
				return nil, err
			}
			s.OtherNames = append(s.OtherNames, o)
		case tagEmail:
			s.EmailAddresses = append(s.EmailAddresses, string(n.Bytes))
		case tagDNS:
			s.DNSNames = append(s.DNSNames, string(n.Bytes))
		case tagURI:
			u, err := url.Parse(string(n.Bytes))
			if err != nil {
				return nil, fmt.Errorf("issuer: parse subjectAltName: uri: %w", err)
			}
			s.URIs = append(s.URIs, u)
		case tagIP:
			if len(n.Bytes) != net.IPv4len && len(n.Bytes) != net.IPv6len {
				return nil, fmt.Errorf("issuer: parse subjectAltName: IP address of %d bytes", len(n.Bytes))
			}
			s.IPAddresses = append(s.IPAddresses, net.IP(n.Bytes))
		}
	}
	return &s, nil
}

func parseOtherName(n asn1.RawValue) (OtherName, error) {
	var o OtherName
	if !n.IsCompound {
		return o, errors.New("issuer: parse subjectAltName: otherName is not constructed")
	}
	rest, err := asn1.Unmarshal(n.Bytes, &o.OID)
	if err != nil {
		return o, fmt.Errorf("issuer: parse subjectAltName: otherName type-id: %w", err)
	}
	var val asn1.RawValue
	if rest, err = asn1.Unmarshal(rest, &val); err != nil {
		return o, fmt.Errorf("issuer: parse subjectAltName: otherName %s value: %w", o.OID, err)
	}
	if len(rest) > 0 || val.Class != asn1.ClassContextSpecific || val.Tag != 0 || !val.IsCompound {
		return o, fmt.Errorf("issuer: parse subjectAltName: otherName %s: value is not [0] EXPLICIT", o.OID)
	}
	var str asn1.RawValue
	if rest, err = asn1.Unmarshal(val.Bytes, &str); err != nil || len(rest) > 0 {
		return o, fmt.Errorf("issuer: parse subjectAltName: otherName %s: value is not one element", o.OID)
	}
	if str.Class != asn1.ClassUniversal || str.Tag != asn1.TagUTF8String || !utf8.Valid(str.Bytes) {
		return o, fmt.Errorf("issuer: parse subjectAltName: otherName %s: value is not a UTF8String", o.OID)
	}
	o.Value = string(str.Bytes)
	return o, nil
}

// subjectAltNameExtension returns the subjectAltName extension of exts.
func subjectAltNameExtension(exts []pkix.Extension) (pkix.Extension, bool) {
	for _, e := range exts {
		if e.Id.Equal(oidSubjectAltName) {
			return e, true
		}
	}
	return pkix.Extension{}, false
}

// OtherNames returns the otherName SANs of a certificate (nil when it has
// none or no subjectAltName extension).
func OtherNames(c *x509.Certificate) ([]OtherName, error) {
	return otherNamesIn(c.Extensions)
}

// otherNamesIn returns the otherName SANs of the subjectAltName among exts.
func otherNamesIn(exts []pkix.Extension) ([]OtherName, error) {
	e, ok := subjectAltNameExtension(exts)
	if !ok {
		return nil, nil
	}
	s, err := ParseSubjectAltName(e.Value)
	if err != nil {
		return nil, err
	}
	return s.OtherNames, nil
}

// csrOtherNamesExtension returns the CSR's subjectAltName extension when it
// carries otherNames, which crypto/x509 would drop when it writes the
// certificate's SANs from the parsed fields. Its criticality follows the
// certificate's subject (RFC 5280 section 4.2.1.6).
func csrOtherNamesExtension(csr *x509.CertificateRequest) (pkix.Extension, bool, error) {
	e, ok := subjectAltNameExtension(csr.Extensions)
	if !ok {
		return e, false, nil
	}
	s, err := ParseSubjectAltName(e.Value)
	if err != nil {
		return e, false, err
	}
	if len(s.OtherNames) == 0 {
		return e, false, nil
	}
	empty, err := emptyRawSubject(csr.RawSubject)
	if err != nil {
		return e, false, err
	}
	return pkix.Extension{Id: oidSubjectAltName, Critical: empty, Value: e.Value}, true, nil
}

func emptyRawSubject(raw []byte) (bool, error) {
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		return false, fmt.Errorf("issuer: parse subject: %w", err)
	}
	return len(seq) == 0, nil
}

// OtherNames returns the otherName SANs the request's CSR asks for.
func (r *Request) OtherNames() ([]OtherName, error) {
	return otherNamesIn(r.CSR.Extensions)
}
