package kube

import (
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// Annotations certops sets besides cert-manager's.
const (
	AnnotationSerial   = "certops.dev/serial"
	AnnotationNotAfter = "certops.dev/not-after"
	AnnotationSpecHash = "certops.dev/spec-hash"
	AnnotationIssuer   = "certops.dev/issuer"
)

// IssuerRef names the issuer of a certificate as cert-manager's
// annotations do.
type IssuerRef struct {
	Name, Kind, Group string
}

// SecretAnnotations returns the annotations of a certificate's Secret:
// cert-manager's cert-manager.io/* set (so tooling written for
// cert-manager's Secrets keeps working) and certops' own serial, not-after,
// spec hash and issuer. Empty values are left out, as cert-manager does.
func SecretAnnotations(certName string, leaf *x509.Certificate, issuer IssuerRef, specHash string) map[string]string {
	a := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	set("cert-manager.io/certificate-name", certName)
	set("cert-manager.io/issuer-name", issuer.Name)
	set("cert-manager.io/issuer-kind", issuer.Kind)
	set("cert-manager.io/issuer-group", issuer.Group)
	set(AnnotationIssuer, issuer.Name)
	set(AnnotationSpecHash, specHash)
	if leaf == nil {
		return a
	}
	set("cert-manager.io/common-name", leaf.Subject.CommonName)
	set("cert-manager.io/alt-names", strings.Join(leaf.DNSNames, ","))
	ips := make([]string, len(leaf.IPAddresses))
	for i, ip := range leaf.IPAddresses {
		ips[i] = ip.String()
	}
	set("cert-manager.io/ip-sans", strings.Join(ips, ","))
	uris := make([]string, len(leaf.URIs))
	for i, u := range leaf.URIs {
		uris[i] = u.String()
	}
	set("cert-manager.io/uri-sans", strings.Join(uris, ","))
	set("cert-manager.io/email-sans", strings.Join(leaf.EmailAddresses, ","))
	s := leaf.Subject
	set("cert-manager.io/subject-organizations", strings.Join(s.Organization, ","))
	set("cert-manager.io/subject-organizationalunits", strings.Join(s.OrganizationalUnit, ","))
	set("cert-manager.io/subject-countries", strings.Join(s.Country, ","))
	set("cert-manager.io/subject-provinces", strings.Join(s.Province, ","))
	set("cert-manager.io/subject-localities", strings.Join(s.Locality, ","))
	set("cert-manager.io/subject-postalcodes", strings.Join(s.PostalCode, ","))
	set("cert-manager.io/subject-streetaddresses", strings.Join(s.StreetAddress, ","))
	set("cert-manager.io/subject-serialnumber", s.SerialNumber)
	set(AnnotationSerial, fmt.Sprintf("%x", leaf.SerialNumber))
	set(AnnotationNotAfter, leaf.NotAfter.UTC().Format(time.RFC3339))
	return a
}
