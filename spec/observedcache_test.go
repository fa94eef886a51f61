package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// hashFS is a MapFS with content hashes that counts the files it reads.
type hashFS struct {
	fstest.MapFS
	reads map[string]int
}

func (h *hashFS) ContentHash(name string) (string, bool) {
	f, ok := h.MapFS[name]
	if !ok {
		return "", false
	}
	sum := sha256.Sum256(f.Data)
	return hex.EncodeToString(sum[:]), true
}

func (h *hashFS) Open(name string) (fs.File, error) {
	if _, ok := h.MapFS[name]; ok {
		h.reads[name]++
	}
	return h.MapFS.Open(name)
}

func (h *hashFS) ReadFile(name string) ([]byte, error) {
	h.reads[name]++
	return h.MapFS.ReadFile(name)
}

func secretYAML(name, notAfter string) []byte {
	return []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + name + "\n  namespace: web\n  annotations:\n" +
		"    certops.dev/certificate: web/" + name + "\n    certops.dev/not-after: \"" + notAfter + "\"\n" +
		"data:\n  tls.crt: ENC[...]\nsops:\n  version: 3.9.0\n")
}

func TestObservedCache(t *testing.T) {
	fsys := &hashFS{MapFS: fstest.MapFS{
		"secrets/web/a.yaml":             {Data: secretYAML("a", "2030-01-01T00:00:00Z")},
		"secrets/web/b.yaml":             {Data: secretYAML("b", "2030-01-01T00:00:00Z")},
		"secrets/web/broken.yaml":        {Data: []byte("kind: ConfigMap\nmetadata: {name: x}\n")},
		"secrets/web/kustomization.yaml": {Data: []byte("resources: []\n")},
	}, reads: map[string]int{}}
	var c ObservedCache
	check := func(step string) map[string]*Observed {
		t.Helper()
		got, gotProbs := c.ReadDir(fsys, "secrets")
		want, wantProbs := ReadObservedDir(fsys.MapFS, "secrets") // no hashes: reads everything
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Observed{}, "Hash")); diff != "" {
			t.Errorf("%s: observed (-uncached +cached):\n%s", step, diff)
		}
		for key, o := range got {
			if h, _ := fsys.ContentHash(o.File); o.Hash != h || h == "" {
				t.Errorf("%s: %s hash %q, want the file's %q", step, key, o.Hash, h)
			}
		}
		if diff := cmp.Diff(wantProbs, gotProbs); diff != "" {
			t.Errorf("%s: problems (-uncached +cached):\n%s", step, diff)
		}
		return got
	}
	first := check("first read")
	if got, want := fsys.reads, map[string]int{"secrets/web/a.yaml": 1, "secrets/web/b.yaml": 1, "secrets/web/broken.yaml": 1}; !cmp.Equal(got, want) {
		t.Errorf("first read read %v, want %v", got, want)
	}

	clear(fsys.reads)
	again := check("unchanged")
	if len(fsys.reads) != 0 {
		t.Errorf("an unchanged tree read %v, want nothing", fsys.reads)
	}
	// An unchanged file is answered with the cached value, not a copy.
	if again["web/a"] != first["web/a"] {
		t.Error("an unchanged file's Observed was copied; want the cached one")
	}

	// A changed file is read again; a removed one leaves the cache.
	fsys.MapFS["secrets/web/a.yaml"] = &fstest.MapFile{Data: secretYAML("a", "2031-06-01T00:00:00Z")}
	delete(fsys.MapFS, "secrets/web/b.yaml")
	clear(fsys.reads)
	got := check("a changed, b removed")
	if want := map[string]int{"secrets/web/a.yaml": 1}; !cmp.Equal(fsys.reads, want) {
		t.Errorf("after a change read %v, want %v", fsys.reads, want)
	}
	if got["web/a"].NotAfter.Year() != 2031 {
		t.Errorf("web/a not-after = %v, want the new 2031 value", got["web/a"].NotAfter)
	}
	if _, ok := c.entries["secrets/web/b.yaml"]; ok || len(c.entries) != 2 {
		t.Errorf("cache holds %d entries (b.yaml: %v), want a.yaml and broken.yaml only", len(c.entries), ok)
	}
}

// TestObservedCacheWithoutHashes: an fs.FS that cannot name contents is
// read whole every time.
func TestObservedCacheWithoutHashes(t *testing.T) {
	fsys := fstest.MapFS{"secrets/web/a.yaml": {Data: secretYAML("a", "2030-01-01T00:00:00Z")}}
	var c ObservedCache
	c.ReadDir(fsys, "secrets")
	fsys["secrets/web/a.yaml"] = &fstest.MapFile{Data: secretYAML("a", "2032-01-01T00:00:00Z")}
	got, _ := c.ReadDir(fsys, "secrets")
	if got["web/a"] == nil || got["web/a"].NotAfter.Year() != 2032 {
		t.Errorf("web/a = %+v, want the 2032 value", got["web/a"])
	}
	if len(c.entries) != 0 {
		t.Errorf("cache holds %d entries without hashes, want 0", len(c.entries))
	}
}

var _ fs.ReadFileFS = (*hashFS)(nil)

// TestObservedCacheAdd: a file the writer recorded is not parsed again
// when a tree holds it with that hash, and is when the hash differs.
func TestObservedCacheAdd(t *testing.T) {
	data := secretYAML("a", "2030-01-01T00:00:00Z")
	fsys := &hashFS{MapFS: fstest.MapFS{"secrets/web/a.yaml": {Data: data}}, reads: map[string]int{}}
	hash, _ := fsys.ContentHash("secrets/web/a.yaml")
	var c ObservedCache
	c.Add("secrets/web/a.yaml", hash, data)
	c.Add("secrets/kustomization.yaml", "k", []byte("resources: []\n"))
	got, probs := c.ReadDir(fsys, "secrets")
	if len(fsys.reads) != 0 || len(probs) != 0 || got["web/a"] == nil || got["web/a"].Hash != hash {
		t.Errorf("after Add: read %v, problems %v, web/a %+v; want no read, no problem, web/a with hash %s", fsys.reads, probs, got["web/a"], hash)
	}
	c.Add("secrets/web/a.yaml", "a stale hash", secretYAML("a", "1999-01-01T00:00:00Z"))
	got, _ = c.ReadDir(fsys, "secrets")
	if got["web/a"] == nil || got["web/a"].NotAfter.Year() != 2030 || fsys.reads["secrets/web/a.yaml"] != 1 {
		t.Errorf("after a mismatched Add: web/a %+v, reads %v; want the 2030 file read once", got["web/a"], fsys.reads)
	}
}
