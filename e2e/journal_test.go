package e2e

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/reconciler"
)

// TestKillNineResumesACMEOrders kills `certops reconcile` with SIGKILL
// after Pebble issued (before the commit), then starts it again: the
// journalled order is resumed, so Pebble sees no new order, the
// certificate lands in exactly one pushed commit, the journal ends empty,
// and no plaintext key is on disk at any point.
func TestKillNineResumesACMEOrders(t *testing.T) {
	bin := buildCertops(t)
	git := peer.StartGit(t, peer.GitOptions{})
	bind := peer.StartBIND(t, "example.test")
	pebble := peer.StartPebble(t, peer.PebbleOptions{DNSServer: bind.Addr})

	tmp := t.TempDir()
	id, key := writeAgeIdentity(t, tmp)
	git.CreateRepo(t, "acme.git")
	git.SeedFiles(t, "acme.git", "main", map[string]string{
		"certops.yaml":        "apiVersion: certops.dev/v1alpha1\nkind: Config\nspec: {}\n",
		".sops.yaml":          "creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: " + id.Recipient().String() + "\n",
		"issuers/pebble.yaml": pebbleIssuerYAML(t, pebble, bind),
		"certificates/web.yaml": `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata: {name: web, namespace: web}
spec:
  secretName: web-tls
  dnsNames: [web.example.test]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: pebble}
  targets: []
`,
	})
	state := filepath.Join(tmp, "state")
	scratch := filepath.Join(tmp, "tmp") // the daemon's TMPDIR, scanned for keys too
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	reconcile := func(crashAt string) (string, error) {
		cmd := exec.Command(bin, "reconcile", "--repo", git.URL("http", "acme.git"), "--age-identity", key,
			"--state-dir", state, "--apply=false", "--log-level", "info")
		cmd.Env = append(os.Environ(), reconciler.CrashEnv+"="+crashAt, "TMPDIR="+scratch)
		cmd.Env = append(cmd.Env, dnsupdateEnv(bind)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	noPlaintextKeys := func(when string) {
		_ = filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && p != key {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("PRIVATE KEY")) {
					t.Errorf("%s: %s holds a plaintext private key", when, p)
				}
			}
			return nil
		})
	}
	journal := func() []string {
		des, err := os.ReadDir(filepath.Join(state, "journal"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		var out []string
		for _, d := range des {
			out = append(out, d.Name())
		}
		return out
	}

	out, err := reconcile("after-issue")
	if !killedBySIGKILL(err) {
		t.Fatalf("the first run was not killed after issuing: %v\n%s", err, out)
	}
	if got := pebble.Orders(); got != 1 {
		t.Fatalf("Pebble saw %d orders before the kill, want 1\n%s", got, out)
	}
	// One order entry, and the new ACME account's key (it reaches Git
	// only with the commit the kill prevented).
	var orders []string
	for _, e := range journal() {
		if !strings.HasPrefix(e, "secret-") {
			orders = append(orders, e)
		}
	}
	if len(orders) != 1 {
		t.Fatalf("journal after the kill: %v, want one order entry", journal())
	}
	if b, err := os.ReadFile(filepath.Join(state, "journal", orders[0])); err != nil || !bytes.Contains(b, []byte(`"orderURL": "https://`)) {
		t.Errorf("the journal entry holds no order URL (%v):\n%s", err, b)
	}
	noPlaintextKeys("after the kill")

	if out, err := reconcile(""); err != nil {
		t.Fatalf("restart after kill -9: %v\n%s", err, out)
	} else if !strings.Contains(out, "order resumed") {
		t.Errorf("the restart did not resume the order:\n%s", out)
	}
	if got := pebble.Orders(); got != 1 {
		t.Errorf("Pebble saw %d new orders on the restart, want 0", got-1)
	}
	trailers := git.Run(t, git.Dir("acme.git"), "log", "--format=%(trailers:key=Certificate,valueonly)", "main")
	if n := strings.Count(" "+strings.Join(strings.Fields(trailers), " ")+" ", " web/web "); n != 1 {
		t.Errorf("web/web was issued in %d pushed commits, want 1", n)
	}
	if got := journal(); len(got) != 0 {
		t.Errorf("journal after the push: %v, want empty", got)
	}
	head := git.Head(t, "acme.git", "main")
	if out, err := reconcile(""); err != nil || git.Head(t, "acme.git", "main") != head || pebble.Orders() != 1 {
		t.Errorf("a third run changed the repository or ordered (%v, %d orders)\n%s", err, pebble.Orders(), out)
	}
	noPlaintextKeys("at the end")
}
