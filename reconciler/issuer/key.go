package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Key algorithms and encodings, spelled as cert-manager's
// spec.privateKey.algorithm and spec.privateKey.encoding.
const (
	RSA     = "RSA"
	ECDSA   = "ECDSA"
	Ed25519 = "Ed25519"

	PKCS1 = "PKCS1"
	PKCS8 = "PKCS8"
)

// KeySpec is spec.privateKey without rotationPolicy (which is the caller's
// decision: with Never it parses the stored key back with ParsePrivateKeyPEM
// and checks it with Matches).
type KeySpec struct {
	Algorithm string // RSA (default), ECDSA or Ed25519
	Size      int    // RSA: 2048 (default)..8192; ECDSA: 256 (default), 384, 521; Ed25519: ignored
	Encoding  string // PKCS1 (default) or PKCS8
}

// WithDefaults returns s with cert-manager's defaults filled in: RSA, 2048
// bits for RSA and 256 for ECDSA, PKCS1.
func (s KeySpec) WithDefaults() KeySpec {
	if s.Algorithm == "" {
		s.Algorithm = RSA
	}
	if s.Size == 0 {
		switch s.Algorithm {
		case RSA:
			s.Size = 2048
		case ECDSA:
			s.Size = 256
		}
	}
	if s.Encoding == "" {
		s.Encoding = PKCS1
	}
	return s
}

// Validate reports every problem of s (after defaults) at once.
func (s KeySpec) Validate() error {
	s = s.WithDefaults()
	var errs []error
	switch s.Algorithm {
	case RSA:
		// cert-manager's bounds: below 2048 is insecure, above 8192 too slow.
		if s.Size < 2048 || s.Size > 8192 {
			errs = append(errs, fmt.Errorf("issuer: privateKey.size %d: RSA needs 2048..8192", s.Size))
		}
	case ECDSA:
		if curve(s.Size) == nil {
			errs = append(errs, fmt.Errorf("issuer: privateKey.size %d: ECDSA needs 256, 384 or 521", s.Size))
		}
	case Ed25519:
	default:
		errs = append(errs, fmt.Errorf("issuer: privateKey.algorithm %q: want RSA, ECDSA or Ed25519", s.Algorithm))
	}
	if s.Encoding != PKCS1 && s.Encoding != PKCS8 {
		errs = append(errs, fmt.Errorf("issuer: privateKey.encoding %q: want PKCS1 or PKCS8", s.Encoding))
	}
	return errors.Join(errs...)
}

func curve(size int) elliptic.Curve {
	switch size {
	case 256:
		return elliptic.P256()
	case 384:
		return elliptic.P384()
	case 521:
		return elliptic.P521()
	}
	return nil
}

// GenerateKey creates a key for s and returns it with its PEM encoding.
func GenerateKey(s KeySpec) (crypto.Signer, []byte, error) {
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	s = s.WithDefaults()
	var (
		key crypto.Signer
		err error
	)
	switch s.Algorithm {
	case RSA:
		key, err = rsa.GenerateKey(rand.Reader, s.Size)
	case ECDSA:
		key, err = ecdsa.GenerateKey(curve(s.Size), rand.Reader)
	case Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("issuer: generate %s key: %w", s.Algorithm, err)
	}
	p, err := EncodePrivateKey(key, s.Encoding)
	if err != nil {
		return nil, nil, err
	}
	return key, p, nil
}

// EncodePrivateKey PEM-encodes key. PKCS1 means "RSA PRIVATE KEY" for RSA
// and SEC 1 "EC PRIVATE KEY" for ECDSA, as cert-manager writes them; Ed25519
// has no PKCS1 form and is always PKCS8.
func EncodePrivateKey(key crypto.Signer, encoding string) ([]byte, error) {
	var b *pem.Block
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if encoding != PKCS8 {
			b = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
		}
	case *ecdsa.PrivateKey:
		if encoding != PKCS8 {
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				return nil, fmt.Errorf("issuer: encode ecdsa key: %w", err)
			}
			b = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
		}
	case ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("issuer: encode key: unsupported key type %T", key)
	}
	if b == nil {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("issuer: encode key as pkcs8: %w", err)
		}
		b = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	return pem.EncodeToMemory(b), nil
}

// ParsePrivateKeyPEM parses the first private key block of data (PKCS1,
// SEC 1 or PKCS8). It is used to reuse a stored key (rotationPolicy: Never).
// Errors never contain key material.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("issuer: no private key PEM block")
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		default:
			return nil, fmt.Errorf("issuer: unsupported private key block %q", b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("issuer: parse %s: %w", strings.ToLower(b.Type), err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("issuer: private key of type %T cannot sign", k)
		}
		if rk, ok := s.(*rsa.PrivateKey); ok {
			if err := rk.Validate(); err != nil {
				return nil, fmt.Errorf("issuer: invalid rsa key: %w", err)
			}
		}
		return s, nil
	}
}

// Matches reports whether key has the algorithm and size s asks for, so
// that a spec change of privateKey forces a new key even with
// rotationPolicy: Never (as cert-manager does).
func (s KeySpec) Matches(key crypto.Signer) bool {
	s = s.WithDefaults()
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return s.Algorithm == RSA && k.N.BitLen() == s.Size
	case *ecdsa.PrivateKey:
		return s.Algorithm == ECDSA && k.Curve == curve(s.Size)
	case ed25519.PrivateKey:
		return s.Algorithm == Ed25519
	}
	return false
}

// SamePublicKey reports whether a and b are the same public key.
func SamePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}
