package gitsource_test

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/gitsource"
)

// The fs.FS of a commit is read from many goroutines at once (encryption
// and decryption run on every core). The objects come from a packfile here,
// as after any clone, where unguarded concurrent reads corrupt each other,
// and commits and pushes read the same packs meanwhile. Without the lock
// that Commit and Push hold, reads fail about one run in three.
func TestFilesConcurrentReads(t *testing.T) {
	seed := map[string]string{}
	for i := range 400 {
		seed[fmt.Sprintf("certs/d%d/f%03d.yaml", i%9, i)] = strings.Repeat(fmt.Sprintf("line %d of a file large enough to compress\n", i), 20)
	}
	g := startGit(t, peer.GitOptions{}, seed)
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git"), CacheDir: t.TempDir()})
	head, err := r.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := r.Files(head)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(seed))
	for n := range seed {
		names = append(names, n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(names)+40)
	// Commits and pushes run alongside the reads, as a pass encrypts the
	// next batch while it pushes the last: both read the same packs.
	wg.Go(func() {
		for i := range 20 {
			files := map[string][]byte{}
			for d := range 9 {
				files[fmt.Sprintf("certs/d%d/new%02d.yaml", d, i)] = []byte(strings.Repeat("new content\n", 30+i))
			}
			if _, _, err := r.Commit(ctx, gitsource.Change{Files: files, Message: gitsource.Message{Subject: fmt.Sprintf("batch %d", i)}}); err != nil {
				errs <- fmt.Errorf("commit %d: %w", i, err)
				return
			}
			if err := r.Push(ctx); err != nil {
				errs <- fmt.Errorf("push %d: %w", i, err)
				return
			}
		}
	})
	for w := range 8 {
		wg.Go(func() {
			for i := range names {
				n := names[(i*7+w*53)%len(names)]
				b, err := fs.ReadFile(fsys, n)
				if err != nil {
					errs <- err
					continue
				}
				if string(b) != seed[n] {
					errs <- fmt.Errorf("%s: read %d bytes that differ from the committed ones", n, len(b))
				}
				if fi, err := fs.Stat(fsys, n); err != nil || fi.Size() != int64(len(seed[n])) {
					errs <- fmt.Errorf("stat %s: %v: %w", n, fi, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 5 {
		t.Errorf("and %d more", n-5)
	}
}

// What certops pushes is SOPS-encrypted: delta search finds nothing in it,
// so the cache is configured not to search.
func TestCachePacksWithoutDeltas(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"keep": "k"})
	cache := t.TempDir()
	open(t, gitsource.Options{URL: g.URL("http", "repo.git"), CacheDir: cache})
	gitDirs, err := filepath.Glob(filepath.Join(cache, "*", "repo.git"))
	if err != nil || len(gitDirs) != 1 {
		t.Fatalf("cache: %v %v", gitDirs, err)
	}
	if got := g.Run(t, gitDirs[0], "config", "pack.window"); got != "0" {
		t.Errorf("pack.window = %q, want 0", got)
	}
}
