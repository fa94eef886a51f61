package issuer

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// DefaultUsages are cert-manager's defaults when spec.usages is empty.
var DefaultUsages = []string{"digital signature", "key encipherment"}

// keyUsages maps every cert-manager KeyUsage name to its x509 value
// (cert-manager pkg/apis/certmanager/v1 KeyUsage, pkg/util/pki BuildKeyUsages).
var keyUsages = map[string]x509.KeyUsage{
	"signing":            x509.KeyUsageDigitalSignature,
	"digital signature":  x509.KeyUsageDigitalSignature,
	"content commitment": x509.KeyUsageContentCommitment,
	"key encipherment":   x509.KeyUsageKeyEncipherment,
	"key agreement":      x509.KeyUsageKeyAgreement,
	"data encipherment":  x509.KeyUsageDataEncipherment,
	"cert sign":          x509.KeyUsageCertSign,
	"crl sign":           x509.KeyUsageCRLSign,
	"encipher only":      x509.KeyUsageEncipherOnly,
	"decipher only":      x509.KeyUsageDecipherOnly,
}

var extKeyUsages = map[string]x509.ExtKeyUsage{
	"any":              x509.ExtKeyUsageAny,
	"server auth":      x509.ExtKeyUsageServerAuth,
	"client auth":      x509.ExtKeyUsageClientAuth,
	"code signing":     x509.ExtKeyUsageCodeSigning,
	"email protection": x509.ExtKeyUsageEmailProtection,
	"s/mime":           x509.ExtKeyUsageEmailProtection,
	"ipsec end system": x509.ExtKeyUsageIPSECEndSystem,
	"ipsec tunnel":     x509.ExtKeyUsageIPSECTunnel,
	"ipsec user":       x509.ExtKeyUsageIPSECUser,
	"timestamping":     x509.ExtKeyUsageTimeStamping,
	"ocsp signing":     x509.ExtKeyUsageOCSPSigning,
	"microsoft sgc":    x509.ExtKeyUsageMicrosoftServerGatedCrypto,
	"netscape sgc":     x509.ExtKeyUsageNetscapeServerGatedCrypto,
}

// UsageNames lists every accepted usage name, sorted.
func UsageNames() []string {
	var out []string
	for k := range keyUsages {
		out = append(out, k)
	}
	for k := range extKeyUsages {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ParseUsages maps cert-manager usage names to key usages and extended key
// usages. Empty names mean DefaultUsages; isCA adds "cert sign", as
// cert-manager does. Unknown names are all reported at once.
func ParseUsages(names []string, isCA bool) (x509.KeyUsage, []x509.ExtKeyUsage, error) {
	if len(names) == 0 {
		names = DefaultUsages
	}
	var (
		ku   x509.KeyUsage
		ekus []x509.ExtKeyUsage
		errs []error
	)
	for _, n := range names {
		if u, ok := keyUsages[n]; ok {
			ku |= u
			continue
		}
		if u, ok := extKeyUsages[n]; ok {
			if !slices.Contains(ekus, u) {
				ekus = append(ekus, u)
			}
			continue
		}
		errs = append(errs, fmt.Errorf("issuer: unknown usage %q", n))
	}
	if isCA {
		ku |= x509.KeyUsageCertSign
	}
	return ku, ekus, errors.Join(errs...)
}
