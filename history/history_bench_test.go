package history

import (
	"context"
	"testing"

	"github.com/go-git/go-git/v5"
)

// BenchmarkHistory10k reads the history of a repository of 10,000
// certificates and about 400 commits: every event, then one certificate's.
// "scan-commits" is the floor measured in the same run: reading every
// commit message and nothing else; compare the others to it.
func BenchmarkHistory10k(b *testing.B) {
	dir := b.TempDir()
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		b.Fatal(err)
	}
	want := generate(b, repo, 10000, 200)
	// Reopen, as the command does, so nothing is cached in memory.
	open := func() *git.Repository {
		r, err := git.PlainOpen(dir)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	b.Run("scan-commits", func(b *testing.B) {
		for b.Loop() {
			r := open()
			it, err := r.Log(&git.LogOptions{})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for c, err := it.Next(); err == nil; c, err = it.Next() {
				n += len(c.Message)
			}
			if n == 0 {
				b.Fatal("no commits")
			}
		}
	})
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			h, err := Read(context.Background(), open(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			if len(h.Events) != want {
				b.Fatalf("read %d events, want %d", len(h.Events), want)
			}
		}
		b.ReportMetric(float64(want), "events")
	})
	b.Run("one", func(b *testing.B) {
		for b.Loop() {
			h, err := Read(context.Background(), open(), Options{Name: certName(7)})
			if err != nil {
				b.Fatal(err)
			}
			if len(h.Events) < 2 {
				b.Fatalf("read %d events for %s, want at least 2", len(h.Events), certName(7))
			}
		}
	})
}
