package issuer_test

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"certops.dev/certops/reconciler/issuer"
)

// signLocally self-signs req with CertificateTemplate, the way the local
// backends do, and returns the parsed certificate.
func signLocally(t *testing.T, req *issuer.Request, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl, err := issuer.CertificateTemplate(req, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return selfSign(t, tmpl, key)
}

// selfSign signs tmpl with key, as its own issuer, and parses the result.
func selfSign(t *testing.T, tmpl *x509.Certificate, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
