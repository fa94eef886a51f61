package spec

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestLoadCache(t *testing.T) {
	fsys := &hashFS{MapFS: fstest.MapFS{
		"certops.yaml":    {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Config\nspec: {clusters: [{name: prod, inCluster: true}]}\n")},
		"issuers/ca.yaml": {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: ca}\nspec: {selfSigned: {}}\n")},
		"certificates/team.yaml": {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: a, annotations: {x: \"1\"}}\nspec: {dnsNames: [a.example.com], issuerRef: {name: ca}, targets: [{cluster: prod, namespaces: [web]}]}\n" +
			"---\napiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: b}\nspec: {dnsNames: [b.example.com], issuerRef: {name: ca}}\n")},
		"certificates/bad.yaml":   {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: bad}\nspec: {dnsNames: [\"-x\"], issuerRef: {name: ca}}\n")},
		"certificates/stray.yaml": {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Config\nspec: {}\n")},
	}, reads: map[string]int{}}
	var cache LoadCache
	check := func(step string) *Repository {
		t.Helper()
		want := Load(fsys.MapFS, LoadOptions{})
		clear(fsys.reads)
		got := Load(fsys, LoadOptions{Cache: &cache})
		opt := cmp.Options{cmpopts.IgnoreUnexported(Repository{}), cmp.AllowUnexported(Certificate{})}
		if diff := cmp.Diff(want, got, opt); diff != "" {
			t.Errorf("%s: Load (-uncached +cached):\n%s", step, diff)
		}
		if len(got.Problems) == 0 {
			t.Errorf("%s: no problems; the fixture has some", step)
		}
		return got
	}
	first := check("first load")
	if len(first.Certificates) != 2 {
		t.Fatalf("loaded %d certificates, want 2", len(first.Certificates))
	}
	// Issuers and the Config are copies: what a caller does to them never
	// reaches the cache. Certificates are shared, read-only, and no Load
	// changes them.
	first.Issuers["ca"].Metadata.Name = "changed"
	first.Config.Spec.Output.Path = "changed"
	before := copyObject(first.Certificates[0])

	again := check("unchanged")
	if len(fsys.reads) != 0 {
		t.Errorf("an unchanged tree read %v, want nothing", fsys.reads)
	}
	if again.Certificates[0] != first.Certificates[0] {
		t.Errorf("an unchanged file's certificate was copied, not shared")
	}
	if diff := cmp.Diff(before, again.Certificates[0], cmp.AllowUnexported(Certificate{})); diff != "" {
		t.Errorf("a Load changed a shared certificate (-before +after):\n%s", diff)
	}

	// A changed file is decoded again; cross-file checks see the new set.
	// The certificates of team.yaml now name an issuer that is gone: the
	// cache does not keep their fields' positions, so the file is read
	// once more to place those problems (check compares them with an
	// uncached Load's).
	fsys.MapFS["issuers/ca.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: other}\nspec: {selfSigned: {}}\n")}
	delete(fsys.MapFS, "certificates/bad.yaml")
	got := check("issuer renamed, bad.yaml removed")
	if want := map[string]int{"issuers/ca.yaml": 1, "certificates/team.yaml": 1}; !cmp.Equal(fsys.reads, want) {
		t.Errorf("after a change read %v, want %v", fsys.reads, want)
	}
	if len(got.Certificates) != 0 {
		t.Errorf("loaded %d certificates whose issuer is gone, want 0", len(got.Certificates))
	}
	if _, ok := cache.entries["certificates/bad.yaml"]; ok || len(cache.entries) != 4 {
		t.Errorf("cache holds %d entries (bad.yaml: %v), want the 4 files of the tree", len(cache.entries), ok)
	}
}

// TestLoadCacheHeldCertificatesAreNotReadAgain: while certops.yaml is
// broken every certificate carries a problem about its whole document; a
// cached certificate file is not read again to place it, and the
// positions are those of an uncached Load.
func TestLoadCacheHeldCertificatesAreNotReadAgain(t *testing.T) {
	fsys := &hashFS{MapFS: fstest.MapFS{
		"certops.yaml":    {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Config\nspec: {}\n")},
		"issuers/ca.yaml": {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: ca}\nspec: {selfSigned: {}}\n")},
		"certificates/team.yaml": {Data: []byte("# two\n\napiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: a}\nspec: {dnsNames: [a.example.com], issuerRef: {name: ca}}\n" +
			"---\n  apiVersion: certops.dev/v1alpha1\n  kind: Certificate\n  metadata: {name: b}\n  spec: {dnsNames: [b.example.com], issuerRef: {name: ca}}\n")},
	}, reads: map[string]int{}}
	var cache LoadCache
	Load(fsys, LoadOptions{Cache: &cache})
	fsys.MapFS["certops.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Config\nspec: {output: {path: /abs}}\n")}
	clear(fsys.reads)
	got := Load(fsys, LoadOptions{Cache: &cache})
	if want := map[string]int{"certops.yaml": 1}; !cmp.Equal(fsys.reads, want) {
		t.Errorf("read %v, want %v", fsys.reads, want)
	}
	want := Load(fsys.MapFS, LoadOptions{})
	if diff := cmp.Diff(want.Problems, got.Problems); diff != "" {
		t.Errorf("problems (-uncached +cached):\n%s", diff)
	}
	held := 0
	for _, p := range got.Problems {
		if strings.HasPrefix(p.Message, "held:") {
			held++
		}
	}
	if held != 2 {
		t.Errorf("%d certificates held, want 2: %v", held, got.Problems)
	}
}
