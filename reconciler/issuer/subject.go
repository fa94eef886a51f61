package issuer

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// attributeTypes are the RFC 4514 section 3 short names plus the ones
// cert-manager's literalSubject accepts.
var attributeTypes = map[string]asn1.ObjectIdentifier{
	"CN":           {2, 5, 4, 3},
	"SERIALNUMBER": {2, 5, 4, 5},
	"C":            {2, 5, 4, 6},
	"L":            {2, 5, 4, 7},
	"ST":           {2, 5, 4, 8},
	"STREET":       {2, 5, 4, 9},
	"O":            {2, 5, 4, 10},
	"OU":           {2, 5, 4, 11},
	"POSTALCODE":   {2, 5, 4, 17},
	"DC":           {0, 9, 2342, 19200300, 100, 1, 25},
	"UID":          {0, 9, 2342, 19200300, 100, 1, 1},
	"EMAILADDRESS": {1, 2, 840, 113549, 1, 9, 1},
}

// ParseLiteralSubject parses an RFC 4514 distinguished name (cert-manager's
// spec.literalSubject) into an RDN sequence in certificate order: RFC 4514
// writes the last RDN first, so "CN=a,O=b" becomes [O=b][CN=a]. Attribute
// types are short names or dotted OIDs; values may use backslash escapes or
// a #-prefixed hex BER encoding.
func ParseLiteralSubject(s string) (pkix.RDNSequence, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("issuer: literalSubject is empty")
	}
	var (
		seq  pkix.RDNSequence
		rdn  pkix.RelativeDistinguishedNameSET
		attr strings.Builder
		val  strings.Builder
		typ  asn1.ObjectIdentifier
		raw  *asn1.RawValue
	)
	inValue := false
	finishAttr := func() error {
		if !inValue {
			return fmt.Errorf("issuer: literalSubject: attribute %q has no value", attr.String())
		}
		tv := pkix.AttributeTypeAndValue{Type: typ, Value: val.String()}
		if raw != nil {
			tv.Value = *raw
		}
		rdn = append(rdn, tv)
		attr.Reset()
		val.Reset()
		raw, typ, inValue = nil, nil, false
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !inValue {
			if c == '=' {
				t, err := parseAttributeType(strings.TrimSpace(attr.String()))
				if err != nil {
					return nil, err
				}
				typ, inValue = t, true
				if i+1 < len(s) && s[i+1] == '#' {
					j := i + 2
					for j < len(s) && s[j] != ',' && s[j] != '+' {
						j++
					}
					b, err := hex.DecodeString(s[i+2 : j])
					if err != nil {
						return nil, fmt.Errorf("issuer: literalSubject: bad hex value: %w", err)
					}
					var rv asn1.RawValue
					if rest, err := asn1.Unmarshal(b, &rv); err != nil || len(rest) > 0 {
						return nil, errors.New("issuer: literalSubject: hex value is not one BER element")
					}
					raw = &rv
					i = j - 1
				}
				continue
			}
			if c == ',' || c == '+' {
				return nil, fmt.Errorf("issuer: literalSubject: %q at offset %d before '='", c, i)
			}
			attr.WriteByte(c)
			continue
		}
		switch c {
		case '\\':
			if i+1 >= len(s) {
				return nil, errors.New("issuer: literalSubject: trailing backslash")
			}
			n := s[i+1]
			if strings.IndexByte(`,+"\<>;=# `, n) >= 0 {
				val.WriteByte(n)
				i++
				continue
			}
			if i+2 < len(s) {
				if b, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
					val.WriteByte(byte(b))
					i += 2
					continue
				}
			}
			return nil, fmt.Errorf("issuer: literalSubject: bad escape at offset %d", i)
		case ',', '+':
			if raw == nil && val.Len() == 0 {
				return nil, fmt.Errorf("issuer: literalSubject: empty value at offset %d", i)
			}
			if err := finishAttr(); err != nil {
				return nil, err
			}
			if c == ',' {
				seq = append(seq, rdn)
				rdn = nil
			}
		case '"', ';', '<', '>':
			return nil, fmt.Errorf("issuer: literalSubject: unescaped %q at offset %d", c, i)
		default:
			if raw != nil {
				return nil, fmt.Errorf("issuer: literalSubject: data after hex value at offset %d", i)
			}
			val.WriteByte(c)
		}
	}
	if raw == nil && val.Len() == 0 {
		return nil, errors.New("issuer: literalSubject: empty value at the end")
	}
	if err := finishAttr(); err != nil {
		return nil, err
	}
	seq = append(seq, rdn)
	for i, j := 0, len(seq)-1; i < j; i, j = i+1, j-1 {
		seq[i], seq[j] = seq[j], seq[i]
	}
	return seq, nil
}

func parseAttributeType(t string) (asn1.ObjectIdentifier, error) {
	if oid, ok := attributeTypes[strings.ToUpper(t)]; ok {
		return oid, nil
	}
	if t == "" || t[0] < '0' || t[0] > '9' {
		return nil, fmt.Errorf("issuer: literalSubject: unknown attribute type %q", t)
	}
	var oid asn1.ObjectIdentifier
	for p := range strings.SplitSeq(t, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("issuer: literalSubject: bad attribute OID %q", t)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, fmt.Errorf("issuer: literalSubject: bad attribute OID %q", t)
	}
	return oid, nil
}
