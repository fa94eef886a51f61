package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// hashedFS is a MapFS that reports content hashes, as the Git tree does,
// so LoadCache and ObservedCache can recognise unchanged files.
type hashedFS struct{ fstest.MapFS }

func (f hashedFS) ContentHash(name string) (string, bool) {
	file, ok := f.MapFS[name]
	if !ok {
		return "", false
	}
	sum := sha256.Sum256(file.Data)
	return hex.EncodeToString(sum[:]), true
}

// benchRepo is n certificates in files of 100, as the scale harness lays
// them out, with a self-signed root and a ca issuer.
func benchRepo(n int) hashedFS {
	fsys := fstest.MapFS{
		"issuers/root.yaml": {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: root}\nspec: {selfSigned: {}}\n")},
		"issuers/ca.yaml":   {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: ca}\nspec: {ca: {secretName: root-ca}}\n")},
	}
	for f := 0; f*100 < n; f++ {
		var b strings.Builder
		for i := f * 100; i < min(n, (f+1)*100); i++ {
			fmt.Fprintf(&b, "---\napiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: c%d, namespace: team-%03d}\nspec: {dnsNames: [c%d.example.com], privateKey: {algorithm: ECDSA}, issuerRef: {name: ca}}\n", i, f, i)
		}
		fsys[fmt.Sprintf("certificates/team-%03d.yaml", f)] = &fstest.MapFile{Data: []byte(b.String())}
	}
	return hashedFS{fsys}
}

// BenchmarkLoad10k loads 10,000 certificate specs: every file decoded
// (cold), and again with every file unchanged since the last Load (cached).
func BenchmarkLoad10k(b *testing.B) {
	fsys := benchRepo(10_000)
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			if repo := Load(fsys, LoadOptions{}); len(repo.Certificates) != 10_000 {
				b.Fatalf("%d certificates, problems %v", len(repo.Certificates), repo.Problems)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		var cache LoadCache
		Load(fsys, LoadOptions{Cache: &cache})
		for b.Loop() {
			if repo := Load(fsys, LoadOptions{Cache: &cache}); len(repo.Certificates) != 10_000 {
				b.Fatalf("%d certificates", len(repo.Certificates))
			}
		}
	})
}

// BenchmarkPlanObserved10k plans 10,000 certificates that are all issued
// and current: the decision every no-op pass makes.
func BenchmarkPlanObserved10k(b *testing.B) {
	repo := Load(benchRepo(10_000), LoadOptions{})
	now := time.Now()
	observed := make(map[string]*Observed, len(repo.Certificates))
	for _, c := range repo.Certificates {
		observed[c.Key()] = &Observed{File: "secrets/" + c.Key() + ".yaml",
			Annotations: NewAnnotations(map[string]string{AnnotationCertificate: c.Key(), AnnotationIssuer: c.Spec.IssuerRef.Name,
				AnnotationSpecHash: c.SpecHash(), AnnotationSpecFile: c.Source.File}),
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour)}
	}
	b.ResetTimer()
	for b.Loop() {
		for _, e := range PlanObserved(repo, observed, now) {
			if e.Decision.Action != ActionNone {
				b.Fatalf("%s: %s (%s)", e.Name, e.Decision.Action, e.Decision.Reason)
			}
		}
	}
}

// BenchmarkSpecHash hashes one certificate's request, which planning does
// for every certificate on every pass.
func BenchmarkSpecHash(b *testing.B) {
	repo := Load(benchRepo(1), LoadOptions{})
	c := repo.Certificates[0]
	for b.Loop() {
		if c.SpecHash() == "" {
			b.Fatal("empty hash")
		}
	}
}
