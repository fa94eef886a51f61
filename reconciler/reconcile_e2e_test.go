package reconciler_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/gitsource"
	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/ca"
	"certops.dev/certops/reconciler/issuer/selfsigned"
	"certops.dev/certops/sops"
	"certops.dev/certops/spec"
)

// factories wires the two local backends the quickstart uses.
func factories() map[string]reconciler.IssuerFactory {
	return map[string]reconciler.IssuerFactory{
		"selfSigned": func(_ context.Context, _ *spec.Issuer, _ reconciler.IssuerEnv) (issuer.Issuer, error) {
			return selfsigned.New(selfsigned.NewDefaultConfig())
		},
		"ca": func(_ context.Context, _ *spec.Issuer, env reconciler.IssuerEnv) (issuer.Issuer, error) {
			cfg := ca.NewDefaultConfig()
			cfg.Certificate, cfg.Chain, cfg.Key = env.CA.Chain[0], env.CA.Chain[1:], env.CA.Key
			return ca.New(cfg)
		},
	}
}

type harness struct {
	t        *testing.T
	git      *peer.Git
	url      string
	identity *age.X25519Identity
	stateDir string
	cacheDir string
	trusted  []string // more recipients the daemon trusts
	batch    int      // Options.CommitBatch; 0 for the default
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	g := peer.StartGit(t, peer.GitOptions{Username: "certops", Password: "s3cret-pass"})
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	// The quickstart with this test's recipient in .sops.yaml.
	src := t.TempDir()
	copyDir(t, "../examples/quickstart", src)
	sopsYAML := regexp.MustCompile(`age1[a-z0-9]+`).ReplaceAllString(readFile(t, filepath.Join(src, ".sops.yaml")), id.Recipient().String())
	writeFile(t, filepath.Join(src, ".sops.yaml"), sopsYAML)
	g.SeedDir(t, "repo.git", "main", src)
	u := strings.Replace(g.URL("http", "repo.git"), "http://", "http://certops:s3cret-pass@", 1)
	return &harness{t: t, git: g, url: u, identity: id, stateDir: t.TempDir(), cacheDir: t.TempDir()}
}

// reconciler opens the repository and a reconciler as the daemon does on
// start; each call is a fresh process' worth of state (from disk).
func (h *harness) reconciler() *reconciler.Reconciler {
	h.t.Helper()
	repo, err := gitsource.Open(context.Background(), gitsource.Options{URL: h.url, Branch: "main", CacheDir: h.cacheDir,
		Author: gitsource.Identity{Name: "certops", Email: "certops@example.com"}})
	if err != nil {
		h.t.Fatal(err)
	}
	trust, err := sops.NewTrust(append([]string{h.identity.Recipient().String()}, h.trusted...), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	codec, err := sops.New(sops.Options{Trust: trust, Identities: sops.Identities{h.identity}})
	if err != nil {
		h.t.Fatal(err)
	}
	rec, err := reconciler.New(reconciler.Options{Source: repo, Crypter: codec, Issuers: factories(), StateDir: h.stateDir,
		CommitBatch: h.batch})
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

func (h *harness) pass(rec *reconciler.Reconciler, force bool) *reconciler.Report {
	h.t.Helper()
	rep := rec.Pass(context.Background(), force)
	if rep.Error != "" || rep.Failed() > 0 || len(rep.Problems) > 0 {
		h.t.Fatalf("pass failed: error %q, problems %v, results %+v", rep.Error, rep.Problems, rep.Results)
	}
	return rep
}

func acted(rep *reconciler.Report) map[string]spec.Reason {
	out := map[string]spec.Reason{}
	for _, c := range rep.Results {
		if c.Action != spec.ActionNone {
			out[c.Name] = c.Reason
		}
	}
	return out
}

func TestReconcileQuickstartEndToEnd(t *testing.T) {
	h := newHarness(t)
	rec := h.reconciler()

	// 1. The first pass issues every certificate in one pushed commit.
	rep := h.pass(rec, false)
	want := map[string]spec.Reason{"platform/root-ca": spec.ReasonDoesNotExist, "web/web": spec.ReasonDoesNotExist,
		"api/api": spec.ReasonDoesNotExist, "api/api-client": spec.ReasonDoesNotExist}
	if got := acted(rep); !equalMaps(got, want) {
		t.Fatalf("first pass acted on %v, want %v", got, want)
	}
	if rep.Pushed == "" || h.git.Head(t, "repo.git", "main") != rep.Pushed {
		t.Fatalf("pushed %q, remote head %q", rep.Pushed, h.git.Head(t, "repo.git", "main"))
	}
	msg := h.git.Run(t, h.git.Dir("repo.git"), "log", "-1", "--format=%B", "main")
	for _, w := range []string{"certops: issue 4", "Certificate: web/web", "Reason: DoesNotExist", "Issuer: internal-ca", "Not-After: ", "Serial: "} {
		if !strings.Contains(msg, w) {
			t.Errorf("commit message lacks %q:\n%s", w, msg)
		}
	}
	trailers := h.git.Run(t, h.git.Dir("repo.git"), "log", "-1", "--format=%(trailers:key=Certificate,valueonly)", "main")
	if n := len(strings.Fields(trailers)); n != 4 {
		t.Errorf("git reads %d Certificate trailers, want 4:\n%s", n, trailers)
	}

	// The files decrypt with the real sops CLI and chain to the root.
	work := h.git.Clone(t, "repo.git", "main")
	keyFile := filepath.Join(t.TempDir(), "age.key")
	writeFile(t, keyFile, h.identity.String()+"\n")
	plain := peer.SopsDecrypt(t, keyFile, filepath.Join(work, "secrets/web/web-tls.yaml"))
	if !strings.Contains(plain, "tls.key") || !strings.Contains(plain, "BEGIN CERTIFICATE") {
		t.Errorf("sops -d output lacks the keypair")
	}
	if !strings.Contains(readFile(t, filepath.Join(work, "secrets/kustomization.yaml")), "web/web-tls.yaml") {
		t.Error("kustomization.yaml does not list web/web-tls.yaml")
	}

	// 2. A second pass, even forced, changes nothing; a fresh process
	// (state from disk) agrees.
	if rep := h.pass(rec, true); rep.Pushed != "" || len(acted(rep)) != 0 {
		t.Fatalf("second pass acted: pushed %q, %v", rep.Pushed, acted(rep))
	}
	if rep := h.pass(h.reconciler(), true); rep.Pushed != "" || len(acted(rep)) != 0 {
		t.Fatalf("pass after restart acted: pushed %q, %v", rep.Pushed, acted(rep))
	}
	// An idle poll fetches nothing: one ls-remote.
	h.git.ResetRequests()
	if rep := h.pass(rec, false); !rep.Idle {
		t.Errorf("unchanged remote: pass was not idle")
	}
	if got := h.git.Requests(); got[peer.ServiceUploadPack] != 0 || got[peer.ServiceReceivePack] != 0 {
		t.Errorf("idle poll made requests %v, want only info/refs", got)
	}

	// 3. Editing one spec's dnsNames re-issues only that certificate.
	web := readFile(t, filepath.Join(work, "certificates/team-a/web.yaml"))
	h.git.SeedFiles(t, "repo.git", "main", map[string]string{
		"certificates/team-a/web.yaml": strings.Replace(web, "- www.a.example.com", "- www.a.example.com\n    - shop.a.example.com", 1),
	})
	if got := acted(h.pass(rec, false)); !equalMaps(got, map[string]spec.Reason{"web/web": spec.ReasonSpecChanged}) {
		t.Fatalf("dnsNames edit acted on %v, want only web/web SpecChanged", got)
	}

	// 4. A comment-only edit re-issues nothing.
	api := readFile(t, filepath.Join(work, "certificates/team-b/api.yaml"))
	h.git.SeedFiles(t, "repo.git", "main", map[string]string{
		"certificates/team-b/api.yaml": "# reviewed by the platform team\n" + api,
	})
	if rep := h.pass(rec, false); len(acted(rep)) != 0 || rep.Pushed != "" {
		t.Fatalf("comment edit acted on %v (pushed %q)", acted(rep), rep.Pushed)
	}

	// 5. Deleting a spec removes its Secret file in the next commit.
	clone := h.git.Clone(t, "repo.git", "main")
	h.git.Run(t, clone, "rm", "--quiet", "certificates/team-a/web.yaml")
	h.git.Run(t, clone, "commit", "--quiet", "-m", "Retire web")
	h.git.Run(t, clone, "push", "--quiet", "origin", "HEAD:main")
	rep = h.pass(rec, false)
	if got := acted(rep); !equalMaps(got, map[string]spec.Reason{}) || rep.Pushed == "" {
		t.Fatalf("removal pass: acted %v, pushed %q", got, rep.Pushed)
	}
	final := h.git.Clone(t, "repo.git", "main")
	if _, err := os.Stat(filepath.Join(final, "secrets/web/web-tls.yaml")); !os.IsNotExist(err) {
		t.Errorf("secrets/web/web-tls.yaml still exists after its spec was deleted (%v)", err)
	}
	if strings.Contains(readFile(t, filepath.Join(final, "secrets/kustomization.yaml")), "web-tls") {
		t.Error("kustomization.yaml still lists web-tls")
	}

	// No private key in clear text in any Git object or in the daemon's
	// folders.
	objects := h.git.Run(t, h.git.Dir("repo.git"), "cat-file", "--batch-all-objects", "--batch")
	if strings.Contains(objects, "PRIVATE KEY") {
		t.Error("a Git object holds a plaintext private key")
	}
	for _, dir := range []string{h.stateDir, h.cacheDir} {
		scanForKeys(t, dir)
	}
}

func scanForKeys(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a plaintext private key", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func equalMaps(a, b map[string]spec.Reason) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRekeyWhenRecipientsChange: a .sops.yaml that adds a trusted recipient
// re-encrypts every owned file in one commit; one that adds an untrusted
// recipient changes nothing.
func TestRekeyWhenRecipientsChange(t *testing.T) {
	h := newHarness(t)
	second, _ := age.GenerateX25519Identity()
	stranger, _ := age.GenerateX25519Identity()
	h.trusted = []string{second.Recipient().String()}
	rec := h.reconciler()
	h.pass(rec, false)

	rule := func(recipients ...string) string {
		return "creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: " + strings.Join(recipients, ",") + "\n"
	}
	h.git.SeedFiles(t, "repo.git", "main", map[string]string{".sops.yaml": rule(h.identity.Recipient().String(), second.Recipient().String())})
	rep := h.pass(rec, false)
	if rep.Pushed == "" {
		t.Fatal("no commit after the recipients changed")
	}
	if msg := h.git.Run(t, h.git.Dir("repo.git"), "log", "-1", "--format=%s", "main"); !strings.Contains(msg, "rekey 4") {
		t.Errorf("commit subject %q, want a rekey of 4 files", msg)
	}
	work := h.git.Clone(t, "repo.git", "main")
	groups, _, err := sops.FileRecipients([]byte(readFile(t, filepath.Join(work, "secrets/web/web-tls.yaml"))))
	if err != nil || len(groups) != 1 || len(groups[0]) != 2 {
		t.Fatalf("recipients after rekey: %v, %v; want one group of 2", groups, err)
	}
	// The second recipient can now decrypt.
	keyFile := filepath.Join(t.TempDir(), "second.key")
	writeFile(t, keyFile, second.String()+"\n")
	if !strings.Contains(peer.SopsDecrypt(t, keyFile, filepath.Join(work, "secrets/web/web-tls.yaml")), "tls.key") {
		t.Error("the new recipient cannot decrypt")
	}

	// A recipient outside the trusted set: nothing is re-encrypted.
	head := h.git.SeedFiles(t, "repo.git", "main", map[string]string{".sops.yaml": rule(h.identity.Recipient().String(), stranger.Recipient().String())})
	rep = rec.Pass(context.Background(), false)
	if rep.Pushed != "" || h.git.Head(t, "repo.git", "main") != head {
		t.Errorf("an untrusted recipient in .sops.yaml led to commit %q", rep.Pushed)
	}
}
