package gitsource_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/gitsource"
)

var ctx = context.Background()

// TestIdlePollDoesNoFetch counts requests on the server: an idle poll is
// one info/refs and nothing else; a fetch happens only after the tip moved.
func TestIdlePollDoesNoFetch(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"a": "1"})
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git")})
	first, err := r.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g.ResetRequests()
	for range 3 {
		head, changed, err := r.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if changed || head != first {
			t.Fatalf("idle Poll = %s, %v; want %s, false", head, changed, first)
		}
	}
	if got, want := g.Requests(), map[string]int{peer.ServiceInfoRefs: 3}; !cmp.Equal(got, want) {
		t.Errorf("3 idle polls made requests %v, want %v", got, want)
	}

	second := g.SeedFiles(t, "repo.git", "main", map[string]string{"b": "2"})
	g.ResetRequests()
	head, changed, err := r.Poll(ctx)
	if err != nil || !changed || head != second {
		t.Fatalf("Poll after a push = %s, %v, %v; want %s, true", head, changed, err, second)
	}
	if got, want := g.Requests(), map[string]int{peer.ServiceInfoRefs: 1}; !cmp.Equal(got, want) {
		t.Errorf("Poll after a push made requests %v, want %v", got, want)
	}
	got, err := r.Sync(ctx)
	if err != nil || got != second {
		t.Fatalf("Sync = %s, %v; want %s", got, err, second)
	}
	if n := g.Requests()[peer.ServiceUploadPack]; n != 1 {
		t.Errorf("Sync after a move made %d upload-pack requests, want 1", n)
	}
	if _, changed, _ := r.Poll(ctx); changed {
		t.Error("Poll after Sync reports a change")
	}
}

// TestShallowClone checks the first fetch brings one commit, not history.
func TestShallowClone(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"a": "1"})
	g.SeedFiles(t, "repo.git", "main", map[string]string{"a": "2"})
	g.SeedFiles(t, "repo.git", "other", map[string]string{"o": "x"})
	cache := t.TempDir()
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git"), CacheDir: cache})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	shallow, err := filepath.Glob(filepath.Join(cache, "*", "repo.git", "shallow"))
	if err != nil || len(shallow) != 1 {
		t.Fatalf("no shallow file in the cache: %v %v", shallow, err)
	}
	gitDir := filepath.Dir(shallow[0])
	if n := g.Run(t, gitDir, "rev-list", "--count", "refs/heads/certops"); n != "1" {
		t.Errorf("cache holds %s commits, want 1 (shallow)", n)
	}
	if refs := g.Run(t, gitDir, "for-each-ref", "--format=%(refname)"); strings.Contains(refs, "other") {
		t.Errorf("cache fetched another branch:\n%s", refs)
	}
	if cfg, _ := os.ReadFile(filepath.Join(gitDir, "config")); strings.Contains(string(cfg), "127.0.0.1") {
		t.Errorf("cache config holds the remote URL:\n%s", cfg)
	}
}

func TestCommitAndPush(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{
		"README":          "hello\n",
		"certs/a/tls.enc": "old-a",
		"certs/b/tls.enc": "old-b",
		"certs/c/tls.enc": "old-c",
		"tools/run.sh":    "#!/bin/sh\n",
	})
	r := open(t, gitsource.Options{
		URL:       g.URL("http", "repo.git"),
		Author:    gitsource.Identity{Name: "certops bot", Email: "bot@example.test"},
		Committer: gitsource.Identity{Name: "certops", Email: "certops@example.test"},
	})
	base, err := r.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := gitsource.Message{
		Subject:  "Issue 2 certificates",
		Body:     "Renewal window reached.",
		Trailers: []gitsource.Trailer{{Key: "Certops-Cert", Value: "a"}, {Key: "Certops-Serial", Value: "01"}},
	}
	hash, changed, err := r.Commit(ctx, gitsource.Change{
		Files: map[string][]byte{
			"certs/a/tls.enc":   []byte("new-a"),
			"certs/b/tls.enc":   []byte("old-b"), // unchanged
			"certs/new/tls.enc": []byte("new"),
		},
		Remove:  []string{"certs/c", "does/not/exist"},
		Message: msg,
	})
	if err != nil || !changed {
		t.Fatalf("Commit = %s, %v, %v", hash, changed, err)
	}
	if n, _ := r.Pending(); n != 1 {
		t.Errorf("Pending = %d, want 1", n)
	}
	// The same change again is no commit and no error.
	again, changed, err := r.Commit(ctx, gitsource.Change{
		Files:   map[string][]byte{"certs/a/tls.enc": []byte("new-a")},
		Remove:  []string{"certs/c"},
		Message: msg,
	})
	if err != nil || changed || again != "" {
		t.Fatalf("repeated Commit = %q, %v, %v; want no commit", again, changed, err)
	}
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Pending(); n != 0 {
		t.Errorf("Pending after Push = %d, want 0", n)
	}
	if got := g.Head(t, "repo.git", "main"); got != hash {
		t.Fatalf("remote main = %s, want %s", got, hash)
	}
	if _, changed, _ := r.Poll(ctx); changed {
		t.Error("Poll after our own push reports a change")
	}

	// What the real git CLI sees.
	clone := g.Clone(t, "repo.git", "main")
	if got := g.Run(t, clone, "rev-parse", "HEAD^"); got != base {
		t.Errorf("parent = %s, want %s", got, base)
	}
	g.Run(t, clone, "fsck", "--strict")
	files := g.Run(t, clone, "ls-files", "-s")
	want := map[string]string{"README": "hello\n", "certs/a/tls.enc": "new-a", "certs/b/tls.enc": "old-b", "certs/new/tls.enc": "new", "tools/run.sh": "#!/bin/sh\n"}
	for p, content := range want {
		b, err := os.ReadFile(filepath.Join(clone, p))
		if err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", p, b, err, content)
		}
	}
	if strings.Contains(files, "certs/c") {
		t.Errorf("certs/c still in the tree:\n%s", files)
	}
	if got, want := g.Run(t, clone, "log", "-1", "--format=%an <%ae>|%cn <%ce>"), "certops bot <bot@example.test>|certops <certops@example.test>"; got != want {
		t.Errorf("identities = %q, want %q", got, want)
	}
	if got := g.Run(t, clone, "log", "-1", "--format=%(trailers:key=Certops-Cert,valueonly)"); got != "a" {
		t.Errorf("trailer Certops-Cert = %q, want a", got)
	}
	if got, want := g.Run(t, clone, "log", "-1", "--format=%B"), msg.String(); got != strings.TrimSpace(want) {
		t.Errorf("message = %q, want %q", got, want)
	}

	// Files reads the commit's tree.
	fsys, err := r.Files(hash)
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, "README", "certs/a/tls.enc", "certs/b/tls.enc", "certs/new/tls.enc", "tools/run.sh"); err != nil {
		t.Error(err)
	}
	if _, err := fs.Stat(fsys, "certs/c/tls.enc"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a removed file: %v, want ErrNotExist", err)
	}
	old, err := r.Files(base)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, old, "certs/a/tls.enc"); got != "old-a" {
		t.Errorf("base commit's certs/a = %q, want old-a", got)
	}
}

func TestCommitRefusesBadPaths(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"dir/file": "x", "f": "y"})
	r := open(t, gitsource.Options{URL: g.URL("file", "repo.git")})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change gitsource.Change
		want   string
	}{
		{"absolute", gitsource.Change{Files: map[string][]byte{"/etc/x": nil}}, `invalid path "/etc/x"`},
		{"dotdot", gitsource.Change{Files: map[string][]byte{"a/../../x": nil}}, "invalid path"},
		{"dot git", gitsource.Change{Files: map[string][]byte{".git/config": nil}}, "invalid path"},
		{"unclean", gitsource.Change{Files: map[string][]byte{"a//b": nil}}, "invalid path"},
		{"write and remove", gitsource.Change{Files: map[string][]byte{"a": nil}, Remove: []string{"a"}}, "both written and removed"},
		{"file and dir", gitsource.Change{Files: map[string][]byte{"a": nil, "a/b": nil}}, "both as a file and as a directory"},
		{"over a directory", gitsource.Change{Files: map[string][]byte{"dir": nil}}, "is a directory in the tree"},
		{"below a file", gitsource.Change{Files: map[string][]byte{"f/x": nil}}, "is a file in the tree"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.change.Message.Subject = "x"
			_, _, err := r.Commit(ctx, tc.change)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Commit error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, _, err := r.Commit(ctx, gitsource.Change{Files: map[string][]byte{"x": nil}}); err == nil {
		t.Error("Commit without a subject succeeded")
	}
	if n, _ := r.Pending(); n != 0 {
		t.Errorf("Pending after refused commits = %d", n)
	}
}

// TestPushRace interleaves 20 pushes by the git CLI with certops commits:
// every commit of both sides ends up on the remote, nothing is forced, and
// each certops change is applied exactly once.
func TestPushRace(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"specs/base.yaml": "x"})
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git"), PushAttempts: 3})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	human := g.Clone(t, "repo.git", "main")
	// Refuse any non-fast-forward update on the server, so a force-push
	// would fail loudly instead of silently dropping commits.
	g.Run(t, g.Dir("repo.git"), "config", "receive.denyNonFastForwards", "true")
	const rounds = 20
	for i := range rounds {
		_, changed, err := r.Commit(ctx, gitsource.Change{
			Files:   map[string][]byte{fmt.Sprintf("certs/%02d.enc", i): []byte(fmt.Sprint(i))},
			Message: gitsource.Message{Subject: fmt.Sprintf("certops change %02d", i)},
		})
		if err != nil || !changed {
			t.Fatalf("round %d: Commit: %v %v", i, changed, err)
		}
		// A human pushes in the middle of the push cycle.
		g.Run(t, human, "pull", "--quiet", "--rebase", "origin", "main")
		if err := os.WriteFile(filepath.Join(human, fmt.Sprintf("specs/%02d.yaml", i)), []byte("spec"), 0o644); err != nil {
			t.Fatal(err)
		}
		g.Run(t, human, "add", "--all")
		g.Run(t, human, "commit", "--quiet", "-m", fmt.Sprintf("human change %02d", i))
		g.Run(t, human, "push", "--quiet", "origin", "HEAD:main")
		if err := r.Push(ctx); err != nil {
			t.Fatalf("round %d: Push: %v", i, err)
		}
	}
	clone := g.Clone(t, "repo.git", "main")
	subjects := strings.Split(g.Run(t, clone, "log", "--format=%s"), "\n")
	count := map[string]int{}
	for _, s := range subjects {
		count[s]++
	}
	for i := range rounds {
		for _, s := range []string{fmt.Sprintf("certops change %02d", i), fmt.Sprintf("human change %02d", i)} {
			if count[s] != 1 {
				t.Errorf("%q appears %d times on the remote, want 1", s, count[s])
			}
		}
		b, err := os.ReadFile(filepath.Join(clone, fmt.Sprintf("certs/%02d.enc", i)))
		if err != nil || string(b) != fmt.Sprint(i) {
			t.Errorf("certs/%02d.enc = %q, %v", i, b, err)
		}
	}
	if len(subjects) != 2*rounds+1 {
		t.Errorf("remote has %d commits, want %d", len(subjects), 2*rounds+1)
	}
	// Linear history: nothing merged, nothing dropped.
	if merges := g.Run(t, clone, "rev-list", "--merges", "--count", "HEAD"); merges != "0" {
		t.Errorf("%s merge commits on the remote", merges)
	}
}

// TestPushRaceConcurrent runs the CLI pushes in a goroutine while certops
// commits and pushes, so collisions happen at real, unplanned moments.
func TestPushRaceConcurrent(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"specs/base.yaml": "x"})
	g.Run(t, g.Dir("repo.git"), "config", "receive.denyNonFastForwards", "true")
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git"), PushAttempts: 50})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	human := g.Clone(t, "repo.git", "main")
	done := make(chan error, 1)
	go func() {
		for i := range rounds {
			if _, err := g.RunErr(human, "pull", "--quiet", "--rebase", "origin", "main"); err != nil {
				done <- err
				return
			}
			if err := os.WriteFile(filepath.Join(human, fmt.Sprintf("specs/%02d.yaml", i)), []byte("spec"), 0o644); err != nil {
				done <- err
				return
			}
			if _, err := g.RunErr(human, "add", "--all"); err != nil {
				done <- err
				return
			}
			if _, err := g.RunErr(human, "commit", "--quiet", "-m", fmt.Sprintf("human change %02d", i)); err != nil {
				done <- err
				return
			}
			// The human retries like a person would: pull and push again.
			for {
				if _, err := g.RunErr(human, "push", "--quiet", "origin", "HEAD:main"); err == nil {
					break
				}
				if _, err := g.RunErr(human, "pull", "--quiet", "--rebase", "origin", "main"); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	for i := range rounds {
		if _, _, err := r.Commit(ctx, gitsource.Change{
			Files:   map[string][]byte{fmt.Sprintf("certs/%02d.enc", i): []byte(fmt.Sprint(i))},
			Message: gitsource.Message{Subject: fmt.Sprintf("certops change %02d", i)},
		}); err != nil {
			t.Fatal(err)
		}
		if err := r.Push(ctx); err != nil {
			t.Fatalf("round %d: Push: %v", i, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("human: %v", err)
	}
	clone := g.Clone(t, "repo.git", "main")
	count := map[string]int{}
	for _, s := range strings.Split(g.Run(t, clone, "log", "--format=%s"), "\n") {
		count[s]++
	}
	for i := range rounds {
		for _, s := range []string{fmt.Sprintf("certops change %02d", i), fmt.Sprintf("human change %02d", i)} {
			if count[s] != 1 {
				t.Errorf("%q appears %d times on the remote, want 1", s, count[s])
			}
		}
	}
}

// TestPushRejectedByHook: a server-side hook refuses the push; the error
// says so, is not mistaken for a race, and nothing is lost.
func TestPushRejectedByHook(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"a": "1"})
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git")})
	before, err := r.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g.InstallHook(t, "repo.git", "pre-receive", "echo 'certops may not push today' >&2; exit 1")
	hash, _, err := r.Commit(ctx, gitsource.Change{Files: map[string][]byte{"b": []byte("2")}, Message: gitsource.Message{Subject: "add b"}})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Push(ctx)
	if err == nil {
		t.Fatal("Push through a refusing hook succeeded")
	}
	if errors.Is(err, gitsource.ErrNonFastForward) {
		t.Errorf("hook refusal reported as a race: %v", err)
	}
	if !strings.Contains(err.Error(), "rejected by the remote") || !strings.Contains(err.Error(), "pre-receive hook declined") {
		t.Errorf("Push error %q does not say the hook refused it", err)
	}
	if got := g.Head(t, "repo.git", "main"); got != before {
		t.Errorf("remote moved to %s", got)
	}
	if n, _ := r.Pending(); n != 1 {
		t.Errorf("Pending after a refused push = %d, want 1", n)
	}
	g.RemoveHook(t, "repo.git", "pre-receive")
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if got := g.Head(t, "repo.git", "main"); got != hash {
		t.Errorf("remote main = %s, want %s", got, hash)
	}
}

// TestPushGivesUp: a remote that moves on every attempt ends in
// ErrNonFastForward after the allowed attempts.
func TestPushGivesUp(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"a": "1"})
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git"), PushAttempts: 2})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Every push is refused while a new commit lands on main, as if another
	// writer always won the race.
	// (The hook leaves receive-pack's quarantine so its commit is kept.)
	g.InstallHook(t, "repo.git", "pre-receive", `
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
git update-ref refs/heads/main "$(git commit-tree -p refs/heads/main -m 'other writer' refs/heads/main^{tree})" || exit 2
echo 'lost the race' >&2
exit 1`)
	if _, _, err := r.Commit(ctx, gitsource.Change{Files: map[string][]byte{"b": []byte("2")}, Message: gitsource.Message{Subject: "add b"}}); err != nil {
		t.Fatal(err)
	}
	err := r.Push(ctx)
	if !errors.Is(err, gitsource.ErrNonFastForward) {
		t.Fatalf("Push = %v, want ErrNonFastForward", err)
	}
	if !strings.Contains(err.Error(), "gave up after 2") {
		t.Errorf("error %q does not say how many attempts were made", err)
	}
	if n, _ := r.Pending(); n != 1 {
		t.Errorf("Pending after giving up = %d, want 1 (the commit is kept)", n)
	}
}

// TestUnpushedCommitSurvivesRestart: a commit left in the cache by a run
// that stopped before pushing is re-applied on the new tip and pushed by
// the next run.
func TestUnpushedCommitSurvivesRestart(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"a": "1"})
	cache := t.TempDir()
	opts := gitsource.Options{URL: g.URL("http", "repo.git"), CacheDir: cache}
	r := open(t, opts)
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Commit(ctx, gitsource.Change{Files: map[string][]byte{"certs/x.enc": []byte("x")}, Message: gitsource.Message{Subject: "issue x"}}); err != nil {
		t.Fatal(err)
	}
	// The process stops here. Meanwhile a human pushes.
	humanHead := g.SeedFiles(t, "repo.git", "main", map[string]string{"specs/y.yaml": "y"})

	r2 := open(t, opts)
	if n, err := r2.Pending(); err != nil || n != 1 {
		t.Fatalf("Pending after restart = %d, %v; want 1", n, err)
	}
	head, err := r2.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := r2.Files(head)
	if err != nil {
		t.Fatal(err)
	}
	// The work commit holds both the human's spec and our unpushed file,
	// so the caller does not issue x again.
	if readFile(t, fsys, "certs/x.enc") != "x" || readFile(t, fsys, "specs/y.yaml") != "y" {
		t.Error("synced head lacks the unpushed change or the human's")
	}
	if err := r2.Push(ctx); err != nil {
		t.Fatal(err)
	}
	clone := g.Clone(t, "repo.git", "main")
	if got := g.Run(t, clone, "rev-parse", "HEAD^"); got != humanHead {
		t.Errorf("our commit's parent = %s, want the human's %s", got, humanHead)
	}
	if got := g.Run(t, clone, "log", "-1", "--format=%s"); got != "issue x" {
		t.Errorf("tip subject = %q", got)
	}
}

// TestPushBranch sends commits to a separate branch and never touches the
// tracked one.
func TestPushBranch(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"a": "1"})
	g.InstallHook(t, "repo.git", "pre-receive", `
while read old new ref; do
  for o in $(seq 0 $((GIT_PUSH_OPTION_COUNT - 1))); do
    eval "echo \"$ref \$GIT_PUSH_OPTION_$o\"" >> push-options.log
  done
done`)
	g.Run(t, g.Dir("repo.git"), "config", "receive.advertisePushOptions", "true")
	main := g.Head(t, "repo.git", "main")
	r := open(t, gitsource.Options{
		URL:         g.URL("http", "repo.git"),
		PushBranch:  "certops/updates",
		PushOptions: map[string]string{"ci.skip": ""},
	})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, _, err := r.Commit(ctx, gitsource.Change{Files: map[string][]byte{"b": []byte(fmt.Sprint(i))}, Message: gitsource.Message{Subject: fmt.Sprint("update ", i)}}); err != nil {
			t.Fatal(err)
		}
		if err := r.Push(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := g.Head(t, "repo.git", "main"); got != main {
		t.Errorf("tracked branch moved to %s", got)
	}
	log := g.Run(t, g.Dir("repo.git"), "log", "--format=%s", "certops/updates")
	if want := "update 1\nupdate 0\nSeed files"; log != want {
		t.Errorf("push branch log = %q, want %q", log, want)
	}
	opts, err := os.ReadFile(filepath.Join(g.Dir("repo.git"), "push-options.log"))
	if err != nil || !strings.Contains(string(opts), "refs/heads/certops/updates ci.skip") {
		t.Errorf("push options seen by the server: %q, %v", opts, err)
	}
}

func TestOpenRefusesForcePush(t *testing.T) {
	_, err := gitsource.Open(ctx, gitsource.Options{URL: "file:///x", CacheDir: t.TempDir(), PushRefSpec: "+HEAD:refs/heads/main"})
	if err == nil || !strings.Contains(err.Error(), "force") {
		t.Fatalf("Open with a forcing refspec: %v", err)
	}
}

// TestCommitManyFiles goes through the packfile path of the object writer
// (more than a few dozen new objects) and checks the result with the git
// CLI and through Files.
func TestCommitManyFiles(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"keep": "k"})
	cache := t.TempDir()
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git"), CacheDir: cache})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for i := range 300 {
		files[fmt.Sprintf("certs/d%d/f%03d.enc", i%7, i)] = []byte(fmt.Sprint("content ", i))
	}
	hash, _, err := r.Commit(ctx, gitsource.Change{Files: files, Message: gitsource.Message{Subject: "many"}})
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := r.Files(hash)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range files {
		if got := readFile(t, fsys, p); got != string(want) {
			t.Fatalf("%s = %q, want %q", p, got, want)
		}
	}
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	g.Run(t, g.Dir("repo.git"), "fsck", "--strict", "--no-dangling")
	clone := g.Clone(t, "repo.git", "main")
	if n := g.Run(t, clone, "ls-files"); len(strings.Split(n, "\n")) != 301 {
		t.Errorf("clone has %d files, want 301", len(strings.Split(n, "\n")))
	}
	// The cache itself, pack included, is a valid repository for the git CLI.
	gitDirs, err := filepath.Glob(filepath.Join(cache, "*", "repo.git"))
	if err != nil || len(gitDirs) != 1 {
		t.Fatalf("cache: %v %v", gitDirs, err)
	}
	g.Run(t, gitDirs[0], "fsck", "--strict", "--no-dangling")
	// Every pack has its index, and no temporary file is left behind.
	packFiles, _ := filepath.Glob(filepath.Join(gitDirs[0], "objects", "pack", "*"))
	exts := map[string][]string{}
	for _, f := range packFiles {
		ext := filepath.Ext(f)
		exts[strings.TrimSuffix(filepath.Base(f), ext)] = append(exts[strings.TrimSuffix(filepath.Base(f), ext)], ext)
	}
	for name, e := range exts {
		if slices.Sort(e); !strings.HasPrefix(name, "pack-") || !slices.Equal(e, []string{".idx", ".pack"}) {
			t.Errorf("objects/pack: %s has %v; want a .pack and its .idx", name, e)
		}
	}
	if len(exts) == 0 {
		t.Error("objects/pack holds no pack")
	}
	if got := g.Run(t, gitDirs[0], "rev-parse", "refs/heads/certops"); got != hash {
		t.Errorf("cache head = %s, want %s", got, hash)
	}
}

// TestPushSendsHeldPacks pushes several unpushed commits, small and large,
// with the packs written when they were committed, and checks that the
// remote's git accepts them as a whole; after a restart the packs are gone
// and the push walks the history instead.
func TestPushSendsHeldPacks(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"keep": "k", "certs/old.enc": "old"})
	cache := t.TempDir()
	logs := &lockedBuffer{}
	opts := gitsource.Options{
		URL:      g.URL("http", "repo.git"),
		CacheDir: cache,
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
	}
	r := open(t, opts)
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	commit := func(r *gitsource.Repo, subject string, files map[string][]byte, remove ...string) string {
		t.Helper()
		h, changed, err := r.Commit(ctx, gitsource.Change{Files: files, Remove: remove, Message: gitsource.Message{Subject: subject}})
		if err != nil || !changed {
			t.Fatalf("Commit %s = %v, %v", subject, changed, err)
		}
		return h
	}
	big := map[string][]byte{}
	for i := range 200 {
		big[fmt.Sprintf("certs/d%d/f%03d.enc", i%5, i)] = []byte(fmt.Sprint("content ", i))
	}
	commit(r, "big", big)                                                                      // a pack in the cache
	commit(r, "small", map[string][]byte{"certs/d1/f001.enc": []byte("new")}, "certs/old.enc") // loose objects
	head := commit(r, "same blob again", map[string][]byte{"certs/copy.enc": []byte("content 7")})
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "objects=held") {
		t.Errorf("push did not send the held packs:\n%s", logs.String())
	}
	pushedTo(t, g, head)
	clone := g.Clone(t, "repo.git", "main")
	if got := g.Run(t, clone, "log", "--format=%s"); got != "same blob again\nsmall\nbig\nSeed files" {
		t.Errorf("remote log = %q", got)
	}
	if n := g.Run(t, clone, "ls-files"); len(strings.Split(n, "\n")) != 202 {
		t.Errorf("clone has %d files, want 202", len(strings.Split(n, "\n")))
	}
	for p, want := range map[string]string{"certs/d1/f001.enc": "new", "certs/copy.enc": "content 7", "certs/d0/f005.enc": "content 5"} {
		if b, err := os.ReadFile(filepath.Join(clone, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}

	// One large commit alone: its pack file is sent as it is.
	big2 := map[string][]byte{}
	for i := range 100 {
		big2[fmt.Sprintf("certs/e/f%03d.enc", i)] = []byte(fmt.Sprint("more ", i))
	}
	head = commit(r, "big alone", big2)
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "objects=held"); n != 2 {
		t.Errorf("%d pushes sent held packs, want 2 (the last one its pack file alone):\n%s", n, logs.String())
	}
	pushedTo(t, g, head)

	// A held pack file that is gone (repacked by git in the cache) is not
	// an error: the push walks instead.
	commit(r, "repacked", map[string][]byte{"certs/e/f000.enc": []byte("changed"), "certs/e/f001.enc": []byte("changed too")})
	for i := range 100 {
		big2[fmt.Sprintf("certs/e/f%03d.enc", i)] = []byte(fmt.Sprint("again ", i))
	}
	head = commit(r, "repacked big", big2)
	g.Run(t, r.GitDir(), "repack", "-a", "-d", "-q")
	if err := r.Push(ctx); err != nil {
		t.Fatalf("push after the held pack was repacked away: %v", err)
	}
	if !strings.Contains(logs.String(), "objects=walked") {
		t.Errorf("push after a repack did not walk:\n%s", logs.String())
	}
	pushedTo(t, g, head)

	// A restart loses the held packs: the push walks instead.
	commit(r, "before restart", map[string][]byte{"certs/z.enc": []byte("z")})
	logs = &lockedBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	r2 := open(t, opts)
	if err := r2.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "objects=walked") {
		t.Errorf("push after restart did not walk:\n%s", logs.String())
	}
	g.Run(t, g.Dir("repo.git"), "fsck", "--strict", "--no-dangling")
}

// TestFetchedPacksAreReadOnly: go-git makes the packs it fetches read-only,
// as git does, through the cache's filesystem (which reads pack indexes
// through a buffer and must pass Chmod on).
func TestFetchedPacksAreReadOnly(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"a": "1"})
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git")})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	packs, err := filepath.Glob(filepath.Join(r.GitDir(), "objects", "pack", "*.pack"))
	if err != nil || len(packs) == 0 {
		t.Fatalf("no pack fetched (%v)", err)
	}
	for _, p := range packs {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o222 != 0 {
			t.Errorf("%s is %v, want read-only", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

// TestLargeCommitIsPushed: a commit whose message is larger than what the
// cache reads whole (a batch of certificates, with its trailers) is
// counted, built upon and pushed; only its headers are read for that.
func TestLargeCommitIsPushed(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"keep": "k"})
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git")})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var trailers []gitsource.Trailer
	for i := range 3000 {
		trailers = append(trailers, gitsource.Trailer{Key: "Certificate", Value: fmt.Sprintf("team/c%d", i)},
			gitsource.Trailer{Key: "Serial", Value: fmt.Sprintf("%032x", i)})
	}
	if _, _, err := r.Commit(ctx, gitsource.Change{Files: map[string][]byte{"a.enc": []byte("a")},
		Message: gitsource.Message{Subject: "large", Trailers: trailers}}); err != nil {
		t.Fatal(err)
	}
	head, _, err := r.Commit(ctx, gitsource.Change{Files: map[string][]byte{"b.enc": []byte("b")}, Message: gitsource.Message{Subject: "on top"}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Pending(); n != 2 || err != nil {
		t.Fatalf("Pending = %d, %v; want 2", n, err)
	}
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	pushedTo(t, g, head)
	clone := g.Clone(t, "repo.git", "main")
	if got := g.Run(t, clone, "log", "--format=%s"); got != "on top\nlarge\nSeed files" {
		t.Errorf("remote log = %q", got)
	}
	if got := g.Run(t, clone, "log", "-1", "--format=%(trailers:key=Serial,valueonly)", "HEAD~1"); strings.Count(got, "\n") != 2999 {
		t.Errorf("the large commit has %d Serial trailers, want 3000", strings.Count(got, "\n")+1)
	}
}

// TestLargeDeltaReadsBack: a file over 64 KiB whose next version reorders
// blocks of the last, delta-compressed by the server (git gc), reads back
// byte for byte. go-git rebuilds such a delta wrongly, without an error,
// when it streams large objects (its LargeObjectThreshold), which the cache
// must therefore not enable.
func TestLargeDeltaReadsBack(t *testing.T) {
	g := startGit(t, peer.GitOptions{}, map[string]string{"keep": "k"})
	r := open(t, gitsource.Options{URL: g.URL("http", "repo.git")})
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	clone := g.Clone(t, "repo.git", "main")
	rng := rand.New(rand.NewPCG(1, 2))
	var blocks []string
	for range 10 { // about 10 KB each
		var b strings.Builder
		for i := range 150 {
			fmt.Fprintf(&b, "line %06d %016x %016x %016x\n", i, rng.Uint64(), rng.Uint64(), rng.Uint64())
		}
		blocks = append(blocks, b.String())
	}
	write := func(order []int, msg string) string {
		var s strings.Builder
		for _, i := range order {
			s.WriteString(blocks[i])
		}
		if err := os.WriteFile(filepath.Join(clone, "kustomization.yaml"), []byte(s.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		g.Run(t, clone, "add", "--all")
		g.Run(t, clone, "commit", "--quiet", "-m", msg)
		return g.Run(t, clone, "rev-parse", "HEAD")
	}
	commits := []string{write([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, "all"), write([]int{5, 0, 9, 8, 2, 3, 4}, "reordered")}
	g.Run(t, clone, "push", "--quiet", "origin", "HEAD:refs/heads/main")
	g.Run(t, g.Dir("repo.git"), "gc", "--aggressive", "--prune=now", "--quiet")
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range commits {
		want := g.Run(t, clone, "show", c+":kustomization.yaml") + "\n"
		fsys, err := r.Files(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fs.ReadFile(fsys, "kustomization.yaml")
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if string(got) != want {
			t.Errorf("%s:kustomization.yaml read back wrong: %d bytes, want %d", c, len(got), len(want))
		}
	}
}
