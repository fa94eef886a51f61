package kube

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	"software.sslmate.com/src/go-pkcs12"
)

func TestOutputDataKeys(t *testing.T) {
	kp, _ := testKeypair(t)
	pw := []byte("changeit")
	tests := []struct {
		name string
		o    Outputs
		want []string
	}{
		{"none", Outputs{}, nil},
		{"combined", Outputs{CombinedPEM: true}, []string{KeyCombinedPEM}},
		{"der", Outputs{DER: true}, []string{KeyDER}},
		{"pkcs12", Outputs{PKCS12: &KeystoreOutput{Password: pw}}, []string{KeyPKCS12Keystore, KeyPKCS12Truststore}},
		{"jks", Outputs{JKS: &KeystoreOutput{Password: pw}}, []string{KeyJKSKeystore, KeyJKSTruststore}},
		{"all", Outputs{PKCS12: &KeystoreOutput{Password: pw, Profile: "Modern2023"}, JKS: &KeystoreOutput{Password: pw}, CombinedPEM: true, DER: true},
			[]string{KeyJKSKeystore, KeyPKCS12Keystore, KeyDER, KeyCombinedPEM, KeyJKSTruststore, KeyPKCS12Truststore}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OutputData(kp, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range got {
					if !yield(k) {
						return
					}
				}
			})
			want := slices.Sorted(slices.Values(tt.want))
			if diff := cmp.Diff(want, keys, cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })); diff != "" && (len(want) != 0 || len(keys) != 0) {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOutputDataDecodes(t *testing.T) {
	kp, leaf := testKeypair(t)
	pw := []byte("s3cret")
	for _, profile := range []string{"", "LegacyDES", "Modern2023"} {
		t.Run("pkcs12-"+profile, func(t *testing.T) {
			out, err := OutputData(kp, Outputs{PKCS12: &KeystoreOutput{Password: pw, Profile: profile}})
			if err != nil {
				t.Fatal(err)
			}
			key, cert, cas, err := pkcs12.DecodeChain(out[KeyPKCS12Keystore], string(pw))
			if err != nil {
				t.Fatalf("decode keystore.p12: %v", err)
			}
			if key == nil || !cert.Equal(leaf) || len(cas) != 1 {
				t.Errorf("keystore.p12 holds cert %v and %d CAs, want the leaf and 1 CA", cert.Subject, len(cas))
			}
			trust, err := pkcs12.DecodeTrustStore(out[KeyPKCS12Truststore], string(pw))
			if err != nil || len(trust) != 1 {
				t.Errorf("truststore.p12: %d certs, %v; want 1", len(trust), err)
			}
			if _, _, _, err := pkcs12.DecodeChain(out[KeyPKCS12Keystore], "wrong"); err == nil {
				t.Error("keystore.p12 decodes with a wrong password")
			}
		})
	}
	t.Run("jks", func(t *testing.T) {
		out, err := OutputData(kp, Outputs{JKS: &KeystoreOutput{Password: pw, Alias: "web"}})
		if err != nil {
			t.Fatal(err)
		}
		ks := keystore.New()
		if err := ks.Load(bytes.NewReader(out[KeyJKSKeystore]), bytes.Clone(pw)); err != nil {
			t.Fatalf("load keystore.jks: %v", err)
		}
		e, err := ks.GetPrivateKeyEntry("web", bytes.Clone(pw))
		if err != nil {
			t.Fatalf("entry web: %v", err)
		}
		if len(e.CertificateChain) != 2 || !bytes.Equal(e.CertificateChain[0].Content, leaf.Raw) {
			t.Errorf("chain has %d certificates; want 2, leaf first", len(e.CertificateChain))
		}
		if _, err := x509.ParsePKCS8PrivateKey(e.PrivateKey); err != nil {
			t.Errorf("private key: %v", err)
		}
		ts := keystore.New()
		if err := ts.Load(bytes.NewReader(out[KeyJKSTruststore]), bytes.Clone(pw)); err != nil {
			t.Fatalf("load truststore.jks: %v", err)
		}
		if !ts.IsTrustedCertificateEntry("ca") {
			t.Errorf("truststore.jks aliases %v; want ca", ts.Aliases())
		}
	})
	t.Run("combined-and-der", func(t *testing.T) {
		out, err := OutputData(kp, Outputs{CombinedPEM: true, DER: true})
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for rest := out[KeyCombinedPEM]; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			types = append(types, b.Type)
		}
		if diff := cmp.Diff([]string{"PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"}, types); diff != "" {
			t.Errorf("tls-combined.pem blocks (-want +got):\n%s", diff)
		}
		if _, err := x509.ParsePKCS8PrivateKey(out[KeyDER]); err != nil {
			t.Errorf("key.der: %v", err)
		}
	})
}

// An unchanged certificate must give unchanged keystores, or every pass
// would rewrite every Secret; a new password must change them.
func TestOutputDataDeterministic(t *testing.T) {
	kp, _ := testKeypair(t)
	o := func(pw string) Outputs {
		return Outputs{PKCS12: &KeystoreOutput{Password: []byte(pw), Profile: "Modern2023"}, JKS: &KeystoreOutput{Password: []byte(pw)}}
	}
	a, err := OutputData(kp, o("one"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := OutputData(kp, o("one"))
	c, _ := OutputData(kp, o("two"))
	for _, k := range []string{KeyPKCS12Keystore, KeyJKSKeystore, KeyPKCS12Truststore, KeyJKSTruststore} {
		if !bytes.Equal(a[k], b[k]) {
			t.Errorf("%s differs between two calls with the same inputs", k)
		}
		if bytes.Equal(a[k], c[k]) {
			t.Errorf("%s is the same under two passwords", k)
		}
	}
}

func TestOutputDataErrors(t *testing.T) {
	kp, _ := testKeypair(t)
	tests := []struct {
		name string
		kp   Keypair
		o    Outputs
	}{
		{"no chain", Keypair{Key: kp.Key}, Outputs{DER: true}},
		{"no key", Keypair{Chain: kp.Chain}, Outputs{DER: true}},
		{"garbage key", Keypair{Chain: kp.Chain, Key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("nope")})}, Outputs{DER: true}},
		{"bad profile", kp, Outputs{PKCS12: &KeystoreOutput{Profile: "RC4"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OutputData(tt.kp, tt.o)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v; want ErrInvalid", err)
			}
			if err != nil && bytes.Contains([]byte(err.Error()), []byte("nope")) {
				t.Errorf("error quotes key material: %v", err)
			}
		})
	}
}
