package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary bytes to the loader as a certificate file. It
// must never panic, and every problem must name its file. The seed corpus
// (every spec in testdata and examples) runs in every `go test`.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/invalid/*/certificates/*.yaml")
	more, _ := filepath.Glob("../examples/*/certificates/*/*.yaml")
	cm, _ := filepath.Glob("testdata/cert-manager/*/*.yaml")
	for _, p := range append(append(seeds, more...), cm...) {
		if data, err := os.ReadFile(p); err == nil && len(data) < MaxFileSize {
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("---\n---\n"))
	issuer := []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: ca}\nspec: {selfSigned: {}}\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		repo := Load(fstest.MapFS{
			"issuers/ca.yaml":     {Data: issuer},
			"certificates/f.yaml": {Data: data},
		}, LoadOptions{})
		for _, p := range repo.Problems {
			if p.File == "" || p.Message == "" {
				t.Fatalf("problem without file or message: %#v", p)
			}
		}
		for _, c := range repo.Certificates {
			if c.Spec.Duration == nil || c.Spec.PrivateKey == nil || c.SpecHash() == "" {
				t.Fatalf("valid certificate without defaults: %#v", c.Spec)
			}
			if strings.Contains(c.Spec.SecretName, "/") {
				t.Fatalf("secret name escapes its folder: %q", c.Spec.SecretName)
			}
		}
	})
}

// FuzzReadObserved feeds arbitrary bytes to the Secret metadata reader.
func FuzzReadObserved(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Secret\nmetadata:\n  annotations:\n    certops.dev/not-after: \"2026-01-01T00:00:00Z\"\n"))
	f.Add([]byte("kind: Secret\nmetadata: {annotations: {certops.dev/not-after: yesterday}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadObserved("f.yaml", data)
	})
}
