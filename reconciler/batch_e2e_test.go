package reconciler_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A pass that issues more than CommitBatch certificates makes one commit
// per batch, each pushed on its own; only the last touches the
// kustomization. A push refused half-way loses nothing: the rest is
// committed and pushed by the next pass, and nothing is issued twice.
func TestLargePassCommitsInBatches(t *testing.T) {
	h := newHarness(t)
	h.batch = 2
	rec := h.reconciler()
	start := h.git.Head(t, "repo.git", "main")
	// The first batch's push is refused, once: the second batch must
	// still be committed, to be pushed with it by the next pass.
	h.git.InstallHook(t, "repo.git", "pre-receive",
		`while read old new ref; do if git log --format=%s "$old..$new" | grep -q '(1/2)'; then echo 'first batch refused' >&2; exit 1; fi; done`)

	rep := rec.Pass(t.Context(), false)
	if !strings.Contains(rep.Error, "pre-receive hook declined") {
		t.Fatalf("pass error %q, want the refused push", rep.Error)
	}
	if rep.Pushed != "" || h.git.Head(t, "repo.git", "main") != start {
		t.Fatalf("pushed %q through a refusing hook", rep.Pushed)
	}
	dir := h.git.Dir("repo.git")

	h.git.RemoveHook(t, "repo.git", "pre-receive")
	rep = h.pass(rec, false)
	if len(acted(rep)) != 0 || rep.Pushed != "" {
		t.Errorf("the pass after the refusal acted on %v (pushed %q); the pending commit should only be pushed", acted(rep), rep.Pushed)
	}
	subjects := h.git.Run(t, dir, "log", "--reverse", "--format=%s", start+"..main")
	if subjects != "certops: issue 2 (1/2)\ncertops: issue 2 (2/2)" {
		t.Errorf("remote history after the refusal:\n%s", subjects)
	}
	certs := strings.Fields(h.git.Run(t, dir, "log", "--format=%(trailers:key=Certificate,valueonly)", start+"..main"))
	slices.Sort(certs)
	if want := []string{"api/api", "api/api-client", "platform/root-ca", "web/web"}; !slices.Equal(certs, want) {
		t.Errorf("Certificate trailers over both commits: %v, want each of %v once", certs, want)
	}
	if files := h.git.Run(t, dir, "show", "--format=", "--name-only", "main~1"); strings.Contains(files, "kustomization") || len(strings.Fields(files)) != 2 {
		t.Errorf("the first batch's commit changes:\n%s\nwant two Secret files and not the kustomization", files)
	}
	if files := h.git.Run(t, dir, "show", "--format=", "--name-only", "main"); !strings.Contains(files, "secrets/kustomization.yaml") {
		t.Errorf("the last batch's commit does not update the kustomization:\n%s", files)
	}
	work := h.git.Clone(t, "repo.git", "main")
	k := readFile(t, filepath.Join(work, "secrets/kustomization.yaml"))
	for _, f := range []string{"web/web-tls.yaml", "api/api-tls.yaml", "api/api-client.yaml", "platform/root-ca.yaml"} {
		if !strings.Contains(k, f) {
			t.Errorf("kustomization.yaml does not list %s:\n%s", f, k)
		}
	}
}
