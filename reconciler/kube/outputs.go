package kube

import (
	"bytes"
	"crypto/sha3"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	"software.sslmate.com/src/go-pkcs12"
)

// Secret keys of the additional outputs, as cert-manager names them so
// workloads written for cert-manager's Secrets read certops' unchanged.
const (
	KeyPKCS12Keystore   = "keystore.p12"
	KeyPKCS12Truststore = "truststore.p12"
	KeyJKSKeystore      = "keystore.jks"
	KeyJKSTruststore    = "truststore.jks"
	KeyCombinedPEM      = "tls-combined.pem"
	KeyDER              = "key.der"
)

// Keypair is a certificate with its key, as PEM.
type Keypair struct {
	// Chain is the certificate chain, leaf first.
	Chain []byte
	// Key is the private key (PKCS#1, SEC 1 or PKCS#8 PEM).
	Key []byte
	// CA is the issuing CA, when known: it fills the truststores.
	CA []byte
}

// Outputs asks for the additional keys of a Secret.
type Outputs struct {
	PKCS12 *KeystoreOutput
	JKS    *KeystoreOutput
	// CombinedPEM adds tls-combined.pem: the key, then the chain.
	CombinedPEM bool
	// DER adds key.der: the private key in DER, in the PEM's encoding.
	DER bool
}

// KeystoreOutput is one keystore: its password (read by the caller from the
// Secret the certificate names, see Cluster.SecretValue) and options.
type KeystoreOutput struct {
	Password []byte
	// Alias of the key entry in a JKS keystore (default "certificate").
	Alias string
	// Profile of a PKCS#12 keystore: LegacyRC2 (default, as cert-manager),
	// LegacyDES or Modern2023.
	Profile string
}

// OutputData returns the additional Secret keys o asks for, derived from kp.
//
// It is deterministic: the same keypair, password and options give the same
// bytes. Keystore formats salt their encryption at random, which would make
// every pass look like a change and rewrite every Secret; here the salt and
// IV bytes come from SHAKE256 over the keystore's own inputs instead. They
// stay unique per key, chain and password — what a salt is for — while an
// unchanged certificate produces an unchanged keystore.
func OutputData(kp Keypair, o Outputs) (map[string][]byte, error) {
	out := map[string][]byte{}
	if o.PKCS12 == nil && o.JKS == nil && !o.CombinedPEM && !o.DER {
		return out, nil
	}
	chain, err := parseChain(kp.Chain)
	if err != nil {
		return nil, err
	}
	keyBlock, _ := pem.Decode(kp.Key)
	if keyBlock == nil {
		return nil, fmt.Errorf("kube: outputs: private key: no PEM block: %w", ErrInvalid)
	}
	key, err := parseKey(keyBlock.Bytes)
	if err != nil {
		return nil, err
	}
	var ca []*x509.Certificate
	if len(bytes.TrimSpace(kp.CA)) > 0 {
		if ca, err = parseChain(kp.CA); err != nil {
			return nil, fmt.Errorf("kube: outputs: ca: %w", errors.Unwrap(err))
		}
	}

	if o.CombinedPEM {
		combined := append(bytes.TrimRight(pem.EncodeToMemory(keyBlock), "\n"), '\n')
		out[KeyCombinedPEM] = append(combined, kp.Chain...)
	}
	if o.DER {
		out[KeyDER] = keyBlock.Bytes
	}
	if o.PKCS12 != nil {
		enc, err := pkcs12Encoder(o.PKCS12.Profile)
		if err != nil {
			return nil, err
		}
		pw := string(o.PKCS12.Password)
		rnd := seeded("pkcs12-keystore", []byte(o.PKCS12.Profile), []byte(pw), keyBlock.Bytes, kp.Chain)
		p12, err := enc.WithRand(rnd).Encode(key, chain[0], chain[1:], pw)
		if err != nil {
			return nil, fmt.Errorf("kube: outputs: pkcs12 keystore: %w", err)
		}
		out[KeyPKCS12Keystore] = p12
		if len(ca) > 0 {
			rnd := seeded("pkcs12-truststore", []byte(o.PKCS12.Profile), []byte(pw), kp.CA)
			ts, err := enc.WithRand(rnd).EncodeTrustStore(ca, pw)
			if err != nil {
				return nil, fmt.Errorf("kube: outputs: pkcs12 truststore: %w", err)
			}
			out[KeyPKCS12Truststore] = ts
		}
	}
	if o.JKS != nil {
		ks, ts, err := jks(chain, key, ca, o.JKS, kp)
		if err != nil {
			return nil, err
		}
		out[KeyJKSKeystore] = ks
		if ts != nil {
			out[KeyJKSTruststore] = ts
		}
	}
	return out, nil
}

func parseChain(p []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := p; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("kube: outputs: certificate: %w", errors.Join(ErrInvalid, err))
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("kube: outputs: certificate chain: no CERTIFICATE block: %w", ErrInvalid)
	}
	return certs, nil
}

// parseKey never quotes the key in its error.
func parseKey(der []byte) (any, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("kube: outputs: private key: not PKCS#8, PKCS#1 or SEC 1: %w", ErrInvalid)
}

func pkcs12Encoder(profile string) (*pkcs12.Encoder, error) {
	switch profile {
	case "", "LegacyRC2":
		return pkcs12.LegacyRC2, nil
	case "LegacyDES":
		return pkcs12.LegacyDES, nil
	case "Modern2023":
		return pkcs12.Modern2023, nil
	}
	return nil, fmt.Errorf("kube: outputs: pkcs12 profile %q: want LegacyRC2, LegacyDES or Modern2023: %w", profile, ErrInvalid)
}

func jks(chain []*x509.Certificate, key any, ca []*x509.Certificate, o *KeystoreOutput, kp Keypair) (keystoreJKS, truststoreJKS []byte, err error) {
	alias := o.Alias
	if alias == "" {
		alias = "certificate"
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("kube: outputs: jks: private key: %w", ErrInvalid)
	}
	// The entry's creation time is part of the file: the leaf's NotBefore
	// keeps it stable across passes.
	created := chain[0].NotBefore
	entry := keystore.PrivateKeyEntry{CreationTime: created, PrivateKey: pkcs8}
	for _, c := range chain {
		entry.CertificateChain = append(entry.CertificateChain, keystore.Certificate{Type: "X509", Content: c.Raw})
	}
	pw := string(o.Password)
	ks := keystore.New(keystore.WithCustomRandomNumberGenerator(seeded("jks-keystore", []byte(alias), []byte(pw), pkcs8, kp.Chain)))
	// keystore-go zeroes the password slices it is given: pass copies.
	if err := ks.SetPrivateKeyEntry(alias, entry, []byte(pw)); err != nil {
		return nil, nil, fmt.Errorf("kube: outputs: jks keystore: %w", err)
	}
	var buf bytes.Buffer
	if err := ks.Store(&buf, []byte(pw)); err != nil {
		return nil, nil, fmt.Errorf("kube: outputs: jks keystore: %w", err)
	}
	keystoreJKS = bytes.Clone(buf.Bytes())
	if len(ca) == 0 {
		return keystoreJKS, nil, nil
	}
	ts := keystore.New(keystore.WithCustomRandomNumberGenerator(seeded("jks-truststore", []byte(pw), kp.CA)))
	for i, c := range ca {
		a := "ca"
		if i > 0 {
			a = fmt.Sprintf("ca-%d", i)
		}
		if err := ts.SetTrustedCertificateEntry(a, keystore.TrustedCertificateEntry{
			CreationTime: c.NotBefore, Certificate: keystore.Certificate{Type: "X509", Content: c.Raw},
		}); err != nil {
			return nil, nil, fmt.Errorf("kube: outputs: jks truststore: %w", err)
		}
	}
	buf.Reset()
	if err := ts.Store(&buf, []byte(pw)); err != nil {
		return nil, nil, fmt.Errorf("kube: outputs: jks truststore: %w", err)
	}
	return keystoreJKS, bytes.Clone(buf.Bytes()), nil
}

// seeded returns a deterministic byte stream derived from the inputs (each
// length-prefixed, so no two input lists collide).
func seeded(label string, inputs ...[]byte) io.Reader {
	h := sha3.NewSHAKE256()
	write := func(b []byte) {
		var n [8]byte
		for i := range n {
			n[i] = byte(uint64(len(b)) >> (56 - 8*i))
		}
		h.Write(n[:])
		h.Write(b)
	}
	write([]byte("certops.dev/keystore/v1/" + label))
	for _, in := range inputs {
		write(in)
	}
	return h
}
