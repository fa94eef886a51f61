package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"certops.dev/certops/reconciler/kube"
)

// TestWithOutputs: derived keys are added to a new map (the loaded data is
// shared by a certificate's targets), and the source names them.
func TestWithOutputs(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "web"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	o := kube.Outputs{CombinedPEM: true, DER: true}
	got, err := withOutputs(data, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(got[kube.KeyCombinedPEM]) == 0 || string(got[kube.KeyDER]) != string(keyDER) || len(got) != 4 {
		t.Errorf("keys %v; want tls.crt, tls.key, %s and %s", keys(got), kube.KeyCombinedPEM, kube.KeyDER)
	}
	if len(data) != 2 {
		t.Errorf("the loaded data was changed: keys %v", keys(data))
	}
	if got, want := outputsSuffix(o), "+"+kube.KeyCombinedPEM+"+"+kube.KeyDER; got != want {
		t.Errorf("suffix %q; want %q", got, want)
	}
	if got := outputsSuffix(kube.Outputs{CombinedPEM: true}); got != "+"+kube.KeyCombinedPEM {
		t.Errorf("suffix %q; want only %s", got, kube.KeyCombinedPEM)
	}
	if _, err := withOutputs(map[string][]byte{"tls.crt": data["tls.crt"]}, o); err == nil {
		t.Error("no error for data without a key")
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
