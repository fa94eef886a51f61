package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"certops.dev/certops/e2e/peer"
)

// TestInitWorkflowValidatesScaffold scaffolds a repository and runs the
// certops commands its GitHub workflow runs, in it.
func TestInitWorkflowValidatesScaffold(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	id := filepath.Join(t.TempDir(), "keys", "age.key")
	out, errOut, code := run(t, "init", "--identity", id, dir)
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	recipient := strings.TrimSpace(out)
	fi, err := os.Stat(id)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	sopsYAML, _ := os.ReadFile(filepath.Join(dir, ".sops.yaml"))
	if !strings.Contains(string(sopsYAML), recipient) || !strings.HasPrefix(recipient, "age1") {
		t.Errorf(".sops.yaml does not name the new recipient %q:\n%s", recipient, sopsYAML)
	}
	wf, err := os.ReadFile(filepath.Join(dir, ".github/workflows/certops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cmds := regexp.MustCompile(`(?m)^\s*- run: certops (.+)$`).FindAllStringSubmatch(string(wf), -1)
	if len(cmds) < 2 {
		t.Fatalf("workflow runs %d certops commands, want validate and plan", len(cmds))
	}
	for _, c := range cmds {
		args := append(strings.Fields(c[1]), dir)
		if out, errOut, code := run(t, args...); code != 0 {
			t.Errorf("certops %s: exit %d\n%s%s", c[1], code, out, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".pre-commit-hooks.yaml")); err != nil {
		t.Error(err)
	}
	// A second init reuses the identity and refuses a non-empty folder.
	if _, _, code := run(t, "init", "--identity", id, dir); code == 0 {
		t.Error("init into a non-empty folder succeeded")
	}
	if out, _, _ := run(t, "init", "--identity", id, filepath.Join(t.TempDir(), "again")); strings.TrimSpace(out) != recipient {
		t.Errorf("second init used recipient %q, want the existing %q", out, recipient)
	}
	if _, _, code := run(t, "init", "--identity", filepath.Join(dir, "inside", "age.key"), filepath.Join(dir, "inside")); code == 0 {
		t.Error("init accepted an identity inside the repository")
	}
}

// TestReconcileThenExportMatchesSopsCLI issues the quick-start with
// `certops reconcile` on a local remote, then checks that export prints
// byte for byte what the real sops CLI decrypts.
func TestReconcileThenExportMatchesSopsCLI(t *testing.T) {
	git := peer.System(t, "git")
	tmp := t.TempDir()
	id := filepath.Join(tmp, "age.key")
	work := filepath.Join(tmp, "work")
	if _, errOut, code := run(t, "init", "--identity", id, work); code != 0 {
		t.Fatal(errOut)
	}
	gitRun := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(git, args...)
		cmd.Dir, cmd.Env = dir, peer.GitEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	gitRun(work, "init", "-q", "-b", "main")
	gitRun(work, "add", "-A")
	gitRun(work, "commit", "-qm", "Request certificates")
	gitRun(tmp, "clone", "-q", "--bare", work, "remote.git")
	remote := "file://" + filepath.Join(tmp, "remote.git")
	out, errOut, code := run(t, "reconcile", "--repo", remote, "--age-identity", id, "--state-dir", filepath.Join(tmp, "state"), "--log-level", "error", "--apply=false")
	if code != 0 || !strings.Contains(out, "issued=4 failed=0") {
		t.Fatalf("reconcile: exit %d\n%s%s", code, out, errOut)
	}
	gitRun(tmp, "clone", "-q", filepath.Join(tmp, "remote.git"), "checkout")
	checkout := filepath.Join(tmp, "checkout")
	exported, errOut, code := run(t, "export", "web/web", checkout, "--age-identity", id)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	cmd := exec.Command(peer.Bin(t, "sops"), "--decrypt", filepath.Join(checkout, "secrets/web/web-tls.yaml"))
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+id, "SOPS_DISABLE_VERSION_CHECK=1")
	want, err := cmd.Output()
	if err != nil {
		t.Fatalf("sops -d: %v", err)
	}
	if exported != string(want) {
		t.Errorf("export differs from sops -d:\n got %q\nwant %q", truncate(exported), truncate(string(want)))
	}
	// --out-dir refuses a folder others can read.
	open := filepath.Join(tmp, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, code := run(t, "export", "web/web", checkout, "--age-identity", id, "--out-dir", open); code == 0 {
		t.Error("export wrote a key into a world-readable folder")
	}
	private := filepath.Join(tmp, "private")
	if _, errOut, code := run(t, "export", "web/web", checkout, "--age-identity", id, "--out-dir", private); code != 0 {
		t.Fatalf("export --out-dir: %s", errOut)
	}
	if fi, err := os.Stat(filepath.Join(private, "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tls.key: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	// A second reconcile makes no commit.
	out, _, code = run(t, "reconcile", "--repo", remote, "--age-identity", id, "--state-dir", filepath.Join(tmp, "state"), "--log-level", "error", "--apply=false")
	if code != 0 || !strings.Contains(out, "pushed= issued=0") {
		t.Errorf("second reconcile: exit %d, %s", code, out)
	}
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
