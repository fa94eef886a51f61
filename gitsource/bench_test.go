package gitsource_test

import (
	"encoding/base64"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/gitsource"
)

// benchFiles is the size of the repository and of the change in the
// commit benchmarks: 10,000 files in 100 directories.
const benchFiles = 10_000

func benchPath(i int) string { return fmt.Sprintf("certs/d%02d/f%04d.enc", i%100, i) }

// benchRemote starts a server whose main branch holds benchFiles files.
func benchRemote(b *testing.B) *peer.Git {
	b.Helper()
	g := peer.StartGit(b, peer.GitOptions{})
	src := b.TempDir()
	for i := range benchFiles {
		p := filepath.Join(src, filepath.FromSlash(benchPath(i)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("seed %d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	g.SeedDir(b, "repo.git", "main", src)
	return g
}

func benchChange(n int) map[string][]byte {
	files := make(map[string][]byte, benchFiles)
	for i := range benchFiles {
		files[benchPath(i)] = []byte(fmt.Sprintf("round %d file %d\n", n, i))
	}
	return files
}

// BenchmarkCommit10kInto10k: one commit changing all 10,000 files of a
// repository that holds 10,000, built directly in the object store.
func BenchmarkCommit10kInto10k(b *testing.B) {
	g := benchRemote(b)
	r := open(b, gitsource.Options{URL: g.URL("file", "repo.git"), Logger: slog.New(slog.DiscardHandler)})
	if _, err := r.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		files := benchChange(n)
		b.StartTimer()
		_, changed, err := r.Commit(ctx, gitsource.Change{Files: files, Message: gitsource.Message{Subject: "bench"}})
		if err != nil || !changed {
			b.Fatal(changed, err)
		}
	}
}

// BenchmarkWorktreeAddCommit10kInto10k is the baseline: the same change
// through go-git's work tree (files written outside the timer, then
// Add of everything and Commit).
func BenchmarkWorktreeAddCommit10kInto10k(b *testing.B) {
	g := benchRemote(b)
	dir := b.TempDir()
	repo, err := git.PlainClone(dir, false, &git.CloneOptions{URL: g.URL("file", "repo.git")})
	if err != nil {
		b.Fatal(err)
	}
	w, err := repo.Worktree()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		for p, content := range benchChange(n) {
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), content, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if err := w.AddWithOptions(&git.AddOptions{All: true}); err != nil {
			b.Fatal(err)
		}
		sig := &object.Signature{Name: "bench", Email: "bench@example.test", When: time.Now()}
		if _, err := w.Commit("bench", &git.CommitOptions{Author: sig, Committer: sig}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilesReadAll10k reads every file of a 10,000-file commit
// through the fs.FS that Files returns.
func BenchmarkFilesReadAll10k(b *testing.B) {
	g := benchRemote(b)
	r := open(b, gitsource.Options{URL: g.URL("file", "repo.git"), Logger: slog.New(slog.DiscardHandler)})
	head, err := r.Sync(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		fsys, err := r.Files(head)
		if err != nil {
			b.Fatal(err)
		}
		count := 0
		err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			_, err = fs.ReadFile(fsys, p)
			count++
			return err
		})
		if err != nil || count != benchFiles {
			b.Fatalf("read %d files: %v", count, err)
		}
	}
}

// BenchmarkCommitPush500 is one batch of an issuing pass: a commit of 500
// new files of about 3 KiB each (like SOPS-encrypted Secrets, which do not
// compress) into a repository of 10,000, pushed over HTTP. History grows
// by one commit per iteration, as it does in a pass.
func BenchmarkCommitPush500(b *testing.B) {
	g := benchRemote(b)
	r := open(b, gitsource.Options{URL: g.URL("http", "repo.git"), Logger: slog.New(slog.DiscardHandler)})
	if _, err := r.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	raw := make([]byte, 2300)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		files := make(map[string][]byte, 500)
		for i := range 500 {
			for k := range raw {
				raw[k] = byte(rnd.Uint32())
			}
			files[fmt.Sprintf("secrets/d%02d/b%05d-%03d.yaml", i%100, n, i)] = []byte(base64.StdEncoding.EncodeToString(raw))
		}
		b.StartTimer()
		if _, changed, err := r.Commit(ctx, gitsource.Change{Files: files, Message: gitsource.Message{Subject: "bench"}}); err != nil || !changed {
			b.Fatal(changed, err)
		}
		if err := r.Push(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
