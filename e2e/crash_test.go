package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/reconciler"
)

// TestKillNineConverges kills `certops reconcile` with SIGKILL at each
// point of a pass, then starts it again: every time the repository ends up
// with each certificate issued in exactly one pushed commit, a further pass
// changes nothing, and no plaintext key is left on disk.
func TestKillNineConverges(t *testing.T) {
	bin := buildCertops(t)
	git := peer.StartGit(t, peer.GitOptions{})
	for i, point := range []string{"before-issue", "after-issue", "after-commit", "after-push"} {
		t.Run(point, func(t *testing.T) {
			tmp := t.TempDir()
			key := filepath.Join(tmp, "age.key")
			work := filepath.Join(tmp, "work")
			if out, err := exec.Command(bin, "init", "--identity", key, work).CombinedOutput(); err != nil {
				t.Fatalf("init: %v\n%s", err, out)
			}
			name := []string{"a.git", "b.git", "c.git", "d.git"}[i]
			git.CreateRepo(t, name)
			git.SeedDir(t, name, "main", work)
			state := filepath.Join(tmp, "state")
			reconcile := func(crashAt string) (string, error) {
				cmd := exec.Command(bin, "reconcile", "--repo", git.URL("http", name), "--age-identity", key,
					"--state-dir", state, "--apply=false", "--log-level", "error")
				cmd.Env = append(os.Environ(), reconciler.CrashEnv+"="+crashAt)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				err := cmd.Run()
				return out.String(), err
			}
			out, err := reconcile(point)
			if !killedBySIGKILL(err) {
				t.Fatalf("the first run was not killed at %s: %v\n%s", point, err, out)
			}
			if out, err := reconcile(""); err != nil {
				t.Fatalf("restart after kill -9: %v\n%s", err, out)
			}
			trailers := git.Run(t, git.Dir(name), "log", "--format=%(trailers:key=Certificate,valueonly)", "main")
			for _, cert := range []string{"platform/root-ca", "web/web", "api/api", "api/api-client"} {
				n := 0
				for _, f := range strings.Fields(trailers) {
					if f == cert {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%s was issued in %d pushed commits, want 1", cert, n)
				}
			}
			head := git.Head(t, name, "main")
			if out, err := reconcile(""); err != nil || git.Head(t, name, "main") != head {
				t.Errorf("a third run changed the repository (%v)\n%s", err, out)
			}
			_ = filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && p != key {
					if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("PRIVATE KEY")) {
						t.Errorf("%s holds a plaintext private key", p)
					}
				}
				return nil
			})
		})
	}
}
