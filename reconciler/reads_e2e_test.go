package reconciler_test

import (
	"context"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/reconciler"
	"certops.dev/certops/spec"
)

// readCounting is a Source whose commits count the Secret files read.
type readCounting struct {
	reconciler.Source
	reads *atomic.Int64
}

func (s readCounting) Files(commit string) (fs.FS, error) {
	f, err := s.Source.Files(commit)
	return countingFS{f, s.reads}, err
}

type countingFS struct {
	fs.FS
	reads *atomic.Int64
}

func (f countingFS) ReadFile(name string) ([]byte, error) {
	if strings.HasPrefix(name, "secrets/") && !strings.HasSuffix(name, "kustomization.yaml") {
		f.reads.Add(1)
	}
	return fs.ReadFile(f.FS, name)
}

func (f countingFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(f.FS, name) }

func (f countingFS) Stat(name string) (fs.FileInfo, error) { return fs.Stat(f.FS, name) }

func (f countingFS) ContentHash(name string) (string, bool) {
	h, ok := f.FS.(spec.ContentHasher)
	if !ok {
		return "", false
	}
	return h.ContentHash(name)
}

// A pass over a repository whose Secret files did not change reads none of
// them: whether each was verified is known from the blob ids of the tree.
func TestPassReadsNoUnchangedSecretFile(t *testing.T) {
	v := newVerifyRig(t)
	repo, err := gitsource.Open(context.Background(), gitsource.Options{URL: v.url, Branch: "main", CacheDir: t.TempDir(),
		Author: gitsource.Identity{Name: "certops", Email: "certops@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	rec, err := reconciler.New(reconciler.Options{Source: readCounting{repo, &reads}, Crypter: v.cr,
		Issuers: countingFactories(&v.signs), StateDir: v.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	if rep := v.pass(rec, false); rep.Pushed == "" {
		t.Fatal("the first pass issued nothing")
	}
	reads.Store(0)
	if rep := v.pass(rec, true); rep.Pushed != "" || len(acted(rep)) != 0 {
		t.Fatalf("pass over an unchanged repository acted: pushed %q, %v", rep.Pushed, acted(rep))
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("a pass over unchanged Secret files read %d of them, want 0", n)
	}
}
