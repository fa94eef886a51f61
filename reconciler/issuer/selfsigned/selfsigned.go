package selfsigned

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"certops.dev/certops/reconciler/issuer"
)

var (
	_ issuer.Issuer     = (*Issuer)(nil)
	_ issuer.SelfSigner = (*Issuer)(nil)
)

// Config configures the selfSigned issuer.
type Config struct {
	// CRLDistributionPoints are written into every certificate (cert-manager's
	// selfSigned.crlDistributionPoints).
	CRLDistributionPoints []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewDefaultConfig returns the default configuration.
func NewDefaultConfig() *Config { return &Config{Now: time.Now} }

// Issuer signs certificates with their own key.
type Issuer struct {
	cfg Config
}

// New returns a selfSigned issuer.
func New(cfg *Config) (*Issuer, error) {
	if cfg == nil {
		return nil, errors.New("selfsigned: nil config")
	}
	c := *cfg
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Issuer{cfg: c}, nil
}

// Sign fails: a self-signed certificate needs its private key (SignSelf).
func (i *Issuer) Sign(ctx context.Context, req *issuer.Request) (*issuer.Result, error) {
	return nil, issuer.Permanent(errors.New("selfsigned: needs the certificate's private key; call SignSelf"))
}

// SignSelf signs req's CSR with key, which must be the CSR's key.
func (i *Issuer) SignSelf(ctx context.Context, req *issuer.Request, key crypto.Signer) (*issuer.Result, error) {
	if err := issuer.ContextErr(ctx, "selfsigned: sign "+req.Name); err != nil {
		return nil, err
	}
	if key == nil || !issuer.SamePublicKey(key.Public(), req.CSR.PublicKey) {
		return nil, issuer.Permanent(fmt.Errorf("selfsigned: %s: the key is not the CSR's key", req.Name))
	}
	tmpl, err := issuer.CertificateTemplate(req, i.cfg.Now())
	if err != nil {
		return nil, err
	}
	tmpl.CRLDistributionPoints = i.cfg.CRLDistributionPoints
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, issuer.Permanent(fmt.Errorf("selfsigned: sign %s: %w", req.Name, err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("selfsigned: parse signed %s: %w", req.Name, err)
	}
	chain := []*x509.Certificate{cert}
	pemChain := issuer.EncodeCertificatesPEM(chain)
	return &issuer.Result{Chain: chain, ChainPEM: pemChain, CAPEM: pemChain}, nil
}
