package sops_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"filippo.io/age"

	"certops.dev/certops/sops"
)

// ageKey is a throwaway age key pair made for one test.
type ageKey struct {
	id        *age.X25519Identity
	recipient string
}

func newAgeKey(t testing.TB) ageKey {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return ageKey{id: id, recipient: id.Recipient().String()}
}

// keyFile writes the identity to an age key file under dir (a t.TempDir):
// age identities are not "PRIVATE KEY" PEM blocks, and the folder is removed
// with the test.
func (k ageKey) keyFile(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "age-"+k.recipient[len(k.recipient)-8:]+".txt")
	if err := os.WriteFile(p, []byte("# test-only key\n"+k.id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newCodec(t testing.TB, trusted []ageKey, ids ...ageKey) *sops.Codec {
	t.Helper()
	var rs []string
	for _, k := range trusted {
		rs = append(rs, k.recipient)
	}
	trust, err := sops.NewTrust(rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	var identities sops.Identities
	for _, k := range ids {
		identities = append(identities, k.id)
	}
	c, err := sops.New(sops.Options{Trust: trust, Identities: identities, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fixedNow() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }

// ageRules is a .sops.yaml with one catch-all rule for the given keys.
func ageRules(keys ...ageKey) string {
	var rs []string
	for _, k := range keys {
		rs = append(rs, k.recipient)
	}
	return fmt.Sprintf("creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: %s\n", strings.Join(rs, ","))
}

func repoWith(files map[string]string) fs.FS {
	m := fstest.MapFS{}
	for p, s := range files {
		m[p] = &fstest.MapFile{Data: []byte(s)}
	}
	return m
}

// tlsSecret returns a kubernetes.io/tls Secret manifest with a fresh ECDSA
// P-256 key and a self-signed certificate: the size of what certops writes.
func tlsSecret(t testing.TB, name string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: name + ".example.test"},
		DNSNames:     []string{name + ".example.test"},
		NotBefore:    fixedNow(),
		NotAfter:     fixedNow().Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	var b bytes.Buffer
	fmt.Fprintf(&b, `apiVersion: v1
kind: Secret
metadata:
  name: %s
  namespace: prod
  labels:
    app.kubernetes.io/managed-by: certops
  annotations:
    certops.dev/spec-hash: sha256-0123456789abcdef
    certops.dev/issuer: letsencrypt
    cert-manager.io/certificate-name: %s
    certops.dev/not-after: "2027-02-25T12:00:00Z"
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s  tls.key: |
%s  ca.crt: |
%s`, name, name, indent(certPEM), indent(keyPEM), indent(certPEM))
	return b.Bytes()
}

func indent(pemBytes []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(string(pemBytes), "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// assertNoPrivateKey fails when any file under dir holds "PRIVATE KEY" in
// clear text.
func assertNoPrivateKey(t testing.TB, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a private key in clear text", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
