package sops_test

import (
	"fmt"
	"testing"
)

// Encrypt and decrypt of one TLS Secret (ECDSA P-256 key, self-signed
// certificate and CA) for 1 and 3 age recipients.
func BenchmarkTLSSecret(b *testing.B) {
	for _, n := range []int{1, 3} {
		keys := make([]ageKey, n)
		for i := range keys {
			keys[i] = newAgeKey(b)
		}
		c := newCodec(b, keys, keys[n-1])
		repo := repoWith(map[string]string{".sops.yaml": ageRules(keys...)})
		plain := tlsSecret(b, "web")
		const file = "secrets/prod/web.yaml"
		enc, err := c.Encrypt(repo, file, plain)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("encrypt/recipients=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Encrypt(repo, file, plain); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("decrypt/recipients=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Decrypt(file, enc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("decrypt-data/recipients=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.DecryptData(file, enc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("update-unchanged/recipients=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, changed, err := c.Update(repo, file, enc, plain); err != nil || changed {
					b.Fatal(changed, err)
				}
			}
		})
	}
}
