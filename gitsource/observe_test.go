package gitsource_test

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/gitsource"
)

// observation is one call of Options.Observe, without the duration.
type observation struct {
	Op string
	OK bool
}

type observer struct {
	mu  sync.Mutex
	got []observation
}

func (o *observer) observe(op string, d time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d < 0 {
		op += " (negative duration)"
	}
	o.got = append(o.got, observation{Op: op, OK: err == nil})
}

func (o *observer) take() []observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := o.got
	o.got = nil
	return out
}

// TestObserve: every remote operation and every commit is reported once,
// with its result; the first fetch into an empty cache is a clone.
func TestObserve(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"a": "1"})
	var obs observer
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git"), Observe: obs.observe, PushAttempts: 1})

	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Sync(ctx); err != nil { // nothing new: an ls-remote, no fetch
		t.Fatal(err)
	}
	if _, _, err := r.Commit(ctx, gitsource.Change{Files: map[string][]byte{"b": []byte("2")}, Message: gitsource.Message{Subject: "add b"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	want := []observation{{"clone", true}, {"ls-remote", true}, {"ls-remote", true}, {"commit", true}, {"push", true}}
	if diff := cmp.Diff(want, obs.take()); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}

	// A push the remote refuses: the push is an error, and the ls-remote
	// that checks whether the remote moved is not.
	g.InstallHook(t, "repo.git", "pre-receive", "exit 1")
	if _, _, err := r.Commit(ctx, gitsource.Change{Files: map[string][]byte{"c": []byte("3")}, Message: gitsource.Message{Subject: "add c"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(ctx); err == nil {
		t.Fatal("Push through a refusing hook succeeded")
	}
	want = []observation{{"commit", true}, {"push", false}, {"ls-remote", true}}
	if diff := cmp.Diff(want, obs.take()); diff != "" {
		t.Errorf("observed after a refused push (-want +got):\n%s", diff)
	}

	// A remote that is gone: ls-remote and fetch fail.
	bad := open(t, gitsource.Options{URL: g.URL("http", "missing.git"), Observe: obs.observe})
	if _, _, err := bad.Poll(ctx); err == nil {
		t.Fatal("Poll of a missing repository succeeded")
	}
	if _, err := bad.Sync(ctx); err == nil {
		t.Fatal("Sync of a missing repository succeeded")
	}
	want = []observation{{"ls-remote", false}, {"clone", false}}
	if diff := cmp.Diff(want, obs.take()); diff != "" {
		t.Errorf("observed on a missing repository (-want +got):\n%s", diff)
	}
}
