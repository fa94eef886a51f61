package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"time"

	"certops.dev/certops/reconciler/issuer"
)

var _ issuer.Issuer = (*Issuer)(nil)

// Config configures the ca issuer.
type Config struct {
	// Certificate and Key are the CA keypair (decrypted by the caller).
	Certificate *x509.Certificate
	Key         crypto.Signer
	// Chain are the CA's own issuers, CA's issuer first, appended to every
	// issued chain (empty for a root CA).
	Chain []*x509.Certificate
	// CRLDistributionPoints, OCSPServers and IssuingCertificateURLs are
	// written into every issued certificate (cert-manager's
	// ca.crlDistributionPoints, ocspServers, issuingCertificateURLs).
	CRLDistributionPoints  []string
	OCSPServers            []string
	IssuingCertificateURLs []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewDefaultConfig returns a configuration without a keypair.
func NewDefaultConfig() *Config { return &Config{Now: time.Now} }

// Issuer signs with one CA keypair.
type Issuer struct {
	cfg   Config
	roots *x509.CertPool
	inter *x509.CertPool
	caPEM []byte
}

// New checks the keypair eagerly: present, a CA, allowed to sign
// certificates, key matching the certificate.
func New(cfg *Config) (*Issuer, error) {
	if cfg == nil {
		return nil, errors.New("ca: nil config")
	}
	c := *cfg
	var errs []error
	switch {
	case c.Certificate == nil:
		errs = append(errs, errors.New("ca: no CA certificate"))
	case !c.Certificate.IsCA || !c.Certificate.BasicConstraintsValid:
		errs = append(errs, fmt.Errorf("ca: certificate %q is not a CA (basicConstraints CA:FALSE)", c.Certificate.Subject))
	case c.Certificate.KeyUsage != 0 && c.Certificate.KeyUsage&x509.KeyUsageCertSign == 0:
		errs = append(errs, fmt.Errorf("ca: certificate %q lacks the cert sign key usage", c.Certificate.Subject))
	}
	if c.Key == nil {
		errs = append(errs, errors.New("ca: no CA private key"))
	} else if c.Certificate != nil && !issuer.SamePublicKey(c.Certificate.PublicKey, c.Key.Public()) {
		errs = append(errs, errors.New("ca: the private key does not match the CA certificate"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	i := &Issuer{cfg: c, roots: x509.NewCertPool(), inter: x509.NewCertPool()}
	// Name constraints are checked against the CA and its issuers: the top
	// of the configured chain is the trust anchor.
	all := append([]*x509.Certificate{c.Certificate}, c.Chain...)
	i.roots.AddCert(all[len(all)-1])
	for _, x := range all[:len(all)-1] {
		i.inter.AddCert(x)
	}
	i.caPEM = issuer.EncodeCertificatesPEM(all[len(all)-1:])
	return i, nil
}

// Sign issues a certificate for req.
func (i *Issuer) Sign(ctx context.Context, req *issuer.Request) (*issuer.Result, error) {
	if err := issuer.ContextErr(ctx, "ca: sign "+req.Name); err != nil {
		return nil, err
	}
	now := i.cfg.Now()
	tmpl, err := issuer.CertificateTemplate(req, now)
	if err != nil {
		return nil, err
	}
	ca := i.cfg.Certificate
	if tmpl.NotAfter.After(ca.NotAfter) {
		return nil, issuer.Permanent(fmt.Errorf("ca: %s: requested notAfter %s is beyond the CA's notAfter %s; shorten spec.duration or renew the CA",
			req.Name, tmpl.NotAfter.UTC().Format(time.RFC3339), ca.NotAfter.UTC().Format(time.RFC3339)))
	}
	if now.Before(ca.NotBefore) {
		return nil, issuer.Permanent(fmt.Errorf("ca: %s: the CA is not valid before %s", req.Name, ca.NotBefore.UTC().Format(time.RFC3339)))
	}
	tmpl.CRLDistributionPoints = i.cfg.CRLDistributionPoints
	tmpl.OCSPServer = i.cfg.OCSPServers
	tmpl.IssuingCertificateURL = i.cfg.IssuingCertificateURLs
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, req.CSR.PublicKey, i.cfg.Key)
	if err != nil {
		return nil, issuer.Permanent(fmt.Errorf("ca: sign %s: %w", req.Name, err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse signed %s: %w", req.Name, err)
	}
	// crypto/x509 enforces the name constraints of every CA in the chain
	// during verification; a certificate that fails here is never returned.
	// otherNames are not constrained (certops' nameConstraints have no
	// otherName form), but a critical subjectAltName of otherNames only is
	// an extension crypto/x509 calls unhandled: it is handled here.
	_, err = withoutCriticalSAN(cert).Verify(x509.VerifyOptions{
		Roots: i.roots, Intermediates: i.inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	var cie x509.CertificateInvalidError
	if errors.As(err, &cie) && cie.Reason == x509.CANotAuthorizedForThisName {
		return nil, issuer.Permanent(fmt.Errorf("ca: %s: a name is outside the CA's name constraints: %s", req.Name, cie.Detail))
	}
	if err != nil {
		return nil, issuer.Permanent(fmt.Errorf("ca: %s: the signed certificate does not verify to the CA: %w", req.Name, err))
	}
	chain := append([]*x509.Certificate{cert, ca}, i.cfg.Chain...)
	return &issuer.Result{Chain: chain, ChainPEM: issuer.EncodeCertificatesPEM(chain), CAPEM: i.caPEM}, nil
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// withoutCriticalSAN returns c, or a shallow copy of c without the
// subjectAltName among its unhandled critical extensions (crypto/x509 lists
// it there when it holds only name forms it does not parse, such as
// otherNames).
func withoutCriticalSAN(c *x509.Certificate) *x509.Certificate {
	i := slices.IndexFunc(c.UnhandledCriticalExtensions, oidSubjectAltName.Equal)
	if i < 0 {
		return c
	}
	cp := *c
	cp.UnhandledCriticalExtensions = slices.Delete(slices.Clone(c.UnhandledCriticalExtensions), i, i+1)
	return &cp
}
