package gitsource_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/gitsource"
)

// packBytes is the size of every packfile in the cache: what fetches and
// commits have written.
func packBytes(t *testing.T, cache string) int64 {
	t.Helper()
	packs, err := filepath.Glob(filepath.Join(cache, "*", "repo.git", "objects", "pack", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range packs {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestIncrementalFetch: after the first (shallow) fetch, a one-file change
// brings that change, not the whole tree again.
func TestIncrementalFetch(t *testing.T) {
	seed := map[string]string{}
	for i := range 300 {
		b := make([]byte, 512) // random: nothing for zlib to shrink
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		seed[fmt.Sprintf("certificates/f%03d.yaml", i)] = hex.EncodeToString(b)
	}
	g := startGit(t, peer.GitOptions{}, seed)
	cache := t.TempDir()
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git"), CacheDir: cache})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	first := packBytes(t, cache)
	if first < 300*512 {
		t.Fatalf("the first fetch wrote %d bytes of packs, want at least %d", first, 300*512)
	}
	second := g.SeedFiles(t, "repo.git", "main", map[string]string{"README.md": "certificates\n"})
	got, err := r.Sync(ctx)
	if err != nil || got != second {
		t.Fatalf("Sync = %s, %v; want %s", got, err, second)
	}
	fsys, err := r.Files(got)
	if err != nil {
		t.Fatal(err)
	}
	if s := readFile(t, fsys, "README.md"); s != "certificates\n" {
		t.Errorf("README.md = %q, want %q", s, "certificates\n")
	}
	if s := readFile(t, fsys, "certificates/f123.yaml"); s != seed["certificates/f123.yaml"] {
		t.Errorf("certificates/f123.yaml = %q, want %q", s, seed["certificates/f123.yaml"])
	}
	// A whole tree again would be as large as the first fetch.
	if grew := packBytes(t, cache) - first; grew > first/10 {
		t.Errorf("a one-file change wrote %d bytes of packs, want at most %d (the first fetch wrote %d)", grew, first/10, first)
	}
}

// TestFetchBehindShallowBoundary: a new tip that merges a commit older than
// the cache's shallow boundary reuses objects only that old commit held.
// The server believes the cache holds them and leaves them out; Sync must
// notice and fetch them.
func TestFetchBehindShallowBoundary(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"old.yaml": "kept only in old history\n", "a": "1"})
	work := g.Clone(t, "repo.git", "main")
	old := g.Run(t, work, "rev-parse", "HEAD")
	g.Run(t, work, "rm", "-q", "old.yaml")
	g.Run(t, work, "commit", "-qm", "drop old.yaml")
	g.Run(t, work, "push", "-q", "origin", "HEAD:main")

	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git")})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A merge of the old commit whose tree is the old tree plus a new file.
	g.Run(t, work, "read-tree", old)
	if err := os.WriteFile(filepath.Join(work, "b"), []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g.Run(t, work, "add", "b")
	tree := g.Run(t, work, "write-tree")
	merge := strings.TrimSpace(g.Run(t, work, "commit-tree", tree, "-p", "HEAD", "-p", old, "-m", "merge the old commit back"))
	g.Run(t, work, "push", "-q", "origin", merge+":refs/heads/main")

	got, err := r.Sync(ctx)
	if err != nil || got != merge {
		t.Fatalf("Sync = %s, %v; want %s", got, err, merge)
	}
	fsys, err := r.Files(got)
	if err != nil {
		t.Fatal(err)
	}
	if s := readFile(t, fsys, "old.yaml"); s != "kept only in old history\n" {
		t.Errorf("old.yaml = %q, want the old content", s)
	}
	if s := readFile(t, fsys, "b"); s != "2\n" {
		t.Errorf("b = %q, want %q", s, "2\n")
	}
}

// TestContentHash: a commit's files name their content by blob id, which
// planning uses to skip files it has read before.
func TestContentHash(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"a/x.yaml": "same\n", "a/y.yaml": "same\n", "b.yaml": "other\n"})
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git")})
	head, err := r.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := r.Files(head)
	if err != nil {
		t.Fatal(err)
	}
	h, ok := fsys.(interface{ ContentHash(string) (string, bool) })
	if !ok {
		t.Fatal("Files does not offer ContentHash")
	}
	x, okx := h.ContentHash("a/x.yaml")
	y, oky := h.ContentHash("a/y.yaml")
	b, okb := h.ContentHash("b.yaml")
	if !okx || !oky || !okb || x != y || x == b {
		t.Errorf("ContentHash: x.yaml %q %v, y.yaml %q %v, b.yaml %q %v; want x == y != b", x, okx, y, oky, b, okb)
	}
	if want := strings.TrimSpace(g.Run(t, g.Dir("repo.git"), "rev-parse", "main:b.yaml")); b != want {
		t.Errorf("ContentHash(b.yaml) = %s, want the blob id %s", b, want)
	}
	if got := gitsource.BlobID([]byte("other\n")); got != b {
		t.Errorf("BlobID(b.yaml's content) = %s, want ContentHash's %s", got, b)
	}
	for _, name := range []string{"a", "missing.yaml"} {
		if got, ok := h.ContentHash(name); ok {
			t.Errorf("ContentHash(%s) = %q, true; want false", name, got)
		}
	}
}
