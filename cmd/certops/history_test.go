package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/history"
)

// TestHistoryListsEveryEventWithItsCause drives real passes against a real
// Git server while three people edit the specs, then reads the history
// back with `certops history` and checks each event and its cause.
func TestHistoryListsEveryEventWithItsCause(t *testing.T) {
	tmp := t.TempDir()
	id := filepath.Join(tmp, "age.key")
	work := filepath.Join(tmp, "work")
	if _, errOut, code := run(t, "init", "--identity", id, work); code != 0 {
		t.Fatal(errOut)
	}
	g := peer.StartGit(t, peer.GitOptions{})
	g.CreateRepo(t, "repo.git")
	seed := g.SeedDir(t, "repo.git", "main", work)

	f := daemonFlags{repo: g.URL("http", "repo.git"), branch: "main", stateDir: filepath.Join(tmp, "state"),
		ageIdentity: id, interval: time.Hour, logLevel: "error", logFormat: "text"}
	ctx := context.Background()
	rec, repo, err := f.build(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	pass := func(what string) string {
		t.Helper()
		rep := rec.Pass(ctx, true)
		if rep.Error != "" || rep.Failed() > 0 || rep.Pushed == "" {
			t.Fatalf("%s: pass error %q, failed %d, pushed %q", what, rep.Error, rep.Failed(), rep.Pushed)
		}
		return rep.Pushed
	}
	// commitAs commits everything in a fresh clone as author and pushes.
	commitAs := func(author, msg string, edit func(dir string)) string {
		t.Helper()
		dir := g.Clone(t, "repo.git", "main")
		edit(dir)
		g.Run(t, dir, "add", "--all")
		g.Run(t, dir, "commit", "--quiet", "--author", author, "-m", msg)
		g.Run(t, dir, "push", "--quiet", "origin", "HEAD:main")
		return g.Run(t, dir, "rev-parse", "HEAD")
	}

	issued := pass("first pass")
	bob := commitAs("Bob <bob@example.test>", "Add shop.a.example.com to web", func(dir string) {
		p := filepath.Join(dir, "certificates/team-a/web.yaml")
		b, _ := os.ReadFile(p)
		out := strings.Replace(string(b), "- www.a.example.com", "- www.a.example.com\n    - shop.a.example.com", 1)
		if out == string(b) {
			t.Fatal("web.yaml has no www.a.example.com to extend")
		}
		if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	reissued := pass("dnsNames edit")
	carol := commitAs("Carol <carol@example.test>", "Renew api-client after a key scare", func(dir string) {
		if _, errOut, code := run(t, "renew", "api/api-client", dir); code != 0 {
			t.Fatal(errOut)
		}
	})
	renewed := pass("forced renewal")
	dave := commitAs("Dave <dave@example.test>", "Retire web", func(dir string) {
		if err := os.Remove(filepath.Join(dir, "certificates/team-a/web.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	removed := pass("removal")

	clone := g.Clone(t, "repo.git", "main")
	out, errOut, code := run(t, "history", clone, "--output", "json")
	if code != 0 {
		t.Fatalf("history: exit %d: %s", code, errOut)
	}
	var h history.History
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("history --output json: %v\n%s", err, out)
	}
	type row struct{ commit, cert, reason, cause, author string }
	want := []row{
		{issued, "api/api", "DoesNotExist", seed, "Test Human"},
		{issued, "api/api-client", "DoesNotExist", seed, "Test Human"},
		{issued, "platform/root-ca", "DoesNotExist", seed, "Test Human"},
		{issued, "web/web", "DoesNotExist", seed, "Test Human"},
		{reissued, "web/web", "SpecChanged", bob, "Bob"},
		{renewed, "api/api-client", "ManuallyTriggered", carol, "Carol"},
		{removed, "web/web", "Deleted", dave, "Dave"},
	}
	var got []row
	for _, e := range h.Events {
		r := row{commit: e.Commit, cert: e.Certificate, reason: e.Reason}
		if e.Cause != nil {
			r.cause, r.author = e.Cause.Commit, e.Cause.Author
		}
		got = append(got, r)
		if e.Reason != "Deleted" && (e.Serial == "" || e.NotAfter.IsZero() || e.Issuer == "") {
			t.Errorf("%s %s: serial %q, not-after %v, issuer %q; want all set", e.Certificate, e.Reason, e.Serial, e.NotAfter, e.Issuer)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events:\n%+v\nwant %d:\n%+v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if h.Truncated {
		t.Error("a full clone reported as truncated")
	}

	// One certificate, as a table.
	out, errOut, code = run(t, "history", "web/web", clone)
	if code != 0 {
		t.Fatalf("history web/web: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], "SpecChanged") || !strings.Contains(lines[2], "Bob <bob@example.test>") ||
		!strings.Contains(lines[3], "Deleted") || !strings.Contains(lines[3], "Retire web") {
		t.Errorf("history web/web table:\n%s\nwant a header and issue, SpecChanged by Bob, Deleted by Retire web", out)
	}

	// A shallow clone says so.
	shallow := t.TempDir()
	g.Run(t, "", "clone", "--quiet", "--depth", "2", "file://"+g.Dir("repo.git"), shallow)
	_, errOut, code = run(t, "history", shallow)
	if code != 0 || !strings.Contains(errOut, "truncated") {
		t.Errorf("shallow clone: exit %d, stderr %q; want 0 and a truncation warning", code, errOut)
	}
}
