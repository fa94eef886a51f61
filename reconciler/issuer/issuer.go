package issuer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Issuer obtains a certificate for a CSR. Implementations must be safe for
// concurrent use, must return promptly once ctx is done, and should classify
// their errors with Permanent, RetryAfter or Transient (an unclassified error
// is treated as transient).
type Issuer interface {
	Sign(ctx context.Context, req *Request) (*Result, error)
}

// SelfSigner is the optional capability of an issuer that needs the
// certificate's own private key (the selfSigned issuer). The reconciler checks
// for it with a type assertion and hands over the key only then.
type SelfSigner interface {
	SignSelf(ctx context.Context, req *Request, key crypto.Signer) (*Result, error)
}

// Request is what the reconciler asks a backend for.
type Request struct {
	// Name identifies the certificate in logs ("namespace/name"); never a secret.
	Name string
	// CSR is the parsed request; CSR.Raw holds its DER. Its signature has been
	// checked by the caller (NewRequest does).
	CSR *x509.CertificateRequest
	// Duration is the requested lifetime (cert-manager's spec.duration). A
	// backend that cannot honour it (ACME) documents so.
	Duration time.Duration
	// IsCA asks for a CA certificate (basicConstraints CA:TRUE).
	IsCA bool
	// Usages and ExtKeyUsages are the requested key usages, already mapped
	// from cert-manager's names by ParseUsages.
	Usages       x509.KeyUsage
	ExtKeyUsages []x509.ExtKeyUsage
	// Replaces is the certificate this one renews, if any; ACME sends its ARI
	// identifier as `replaces` (RFC 9773 section 5).
	Replaces *x509.Certificate
	// OnOrder, when set, is told the URL of each order a Resumer creates
	// for this request, so the caller can journal it (see Resumer). Other
	// backends ignore it.
	OnOrder OrderObserver
}

// NewRequest parses and checks a DER-encoded CSR and fills a Request.
func NewRequest(name string, csrDER []byte, d time.Duration) (*Request, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, Permanent(fmt.Errorf("issuer: parse csr of %s: %w", name, err))
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, Permanent(fmt.Errorf("issuer: csr of %s: bad signature: %w", name, err))
	}
	return &Request{Name: name, CSR: csr, Duration: d}, nil
}

// CSRPEM returns the request's CSR PEM-encoded.
func (r *Request) CSRPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: r.CSR.Raw})
}

// Result is what a backend returns.
type Result struct {
	// Chain is the issued certificate first, then the intermediates, as the
	// CA sent them (the root is included only if the CA sent it).
	Chain []*x509.Certificate
	// ChainPEM is Chain PEM-encoded, in the same order (tls.crt).
	ChainPEM []byte
	// CAPEM is the issuing CA (the root of the chain) when the backend knows
	// it (ca.crt); empty otherwise.
	CAPEM []byte
	// RenewalHint is the CA's suggested renewal window (ACME ARI), if any.
	RenewalHint *Window
}

// Leaf returns the issued certificate.
func (r *Result) Leaf() *x509.Certificate {
	if r == nil || len(r.Chain) == 0 {
		return nil
	}
	return r.Chain[0]
}

// NewResult builds a Result from a PEM chain (leaf first) and an optional CA
// PEM, rejecting anything that is not a certificate.
func NewResult(chainPEM, caPEM []byte) (*Result, error) {
	chain, err := ParseCertificatesPEM(chainPEM)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return nil, errors.New("issuer: empty certificate chain")
	}
	if len(caPEM) > 0 {
		if _, err := ParseCertificatesPEM(caPEM); err != nil {
			return nil, fmt.Errorf("issuer: ca: %w", err)
		}
	}
	return &Result{Chain: chain, ChainPEM: EncodeCertificatesPEM(chain), CAPEM: bytes.TrimLeft(caPEM, "\n")}, nil
}

// ParseCertificatesPEM parses every CERTIFICATE block of data, in order. Any
// other block or trailing garbage is an error.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("issuer: unexpected PEM block %q in certificate chain", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("issuer: parse certificate %d: %w", len(out), err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("issuer: trailing data after the last PEM certificate")
	}
	return out, nil
}

// EncodeCertificatesPEM encodes certificates as concatenated PEM blocks.
func EncodeCertificatesPEM(certs []*x509.Certificate) []byte {
	// Sized up front: the result is held until its commit, and a grown
	// buffer is up to twice as large.
	size := 0
	for _, c := range certs {
		b64 := (len(c.Raw) + 2) / 3 * 4
		size += len("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n") + b64 + (b64+63)/64
	}
	b := bytes.NewBuffer(make([]byte, 0, size))
	for _, c := range certs {
		_ = pem.Encode(b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// Window is a renewal window suggested by the CA (ACME ARI, RFC 9773).
type Window struct {
	Start, End time.Time
	// ExplanationURL is the CA's optional explanation of the window.
	ExplanationURL string
}

// Pick returns a uniformly random point in the window, as RFC 9773 section
// 4.2 recommends, so that clients do not renew in lockstep. A window whose
// end is not after its start yields its start.
func (w Window) Pick(r *rand.Rand) time.Time {
	d := w.End.Sub(w.Start)
	if d <= 0 {
		return w.Start
	}
	return w.Start.Add(time.Duration(r.Int64N(int64(d))))
}
