package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/net/html"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/reconciler"
)

// pageRepo is a certificate repository with four certificates that issue
// and one whose CA issuer has no keypair in the repository, so it fails.
func pageRepo(recipient string) map[string]string {
	cert := func(ns, name, issuer, extra string) string {
		return fmt.Sprintf("apiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n"+
			"  privateKey: {algorithm: ECDSA}\n  issuerRef: {name: %s}\n%s", name, ns, issuer, extra)
	}
	return map[string]string{
		".sops.yaml": "creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: " + recipient + "\n",
		"certops.yaml": `apiVersion: certops.dev/v1alpha1
kind: Config
spec:
  clusters:
    - name: dev
      kubeconfig: {path: /etc/certops/kubeconfigs/dev}
      namespaces: [web, api, platform]
      default: true
    - name: prod
      kubeconfig: {path: /etc/certops/kubeconfigs/prod}
      namespaces: [web, api]
`,
		"issuers/selfsigned-root.yaml": "apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata:\n  name: selfsigned-root\nspec:\n  selfSigned: {}\n",
		"issuers/internal-ca.yaml":     "apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata:\n  name: internal-ca\nspec:\n  ca: {secretName: root-ca}\n",
		"issuers/lost-ca.yaml":         "apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata:\n  name: lost-ca\nspec:\n  ca: {secretName: lost-root}\n",
		"certificates/root-ca.yaml": cert("platform", "root-ca", "selfsigned-root",
			"  isCA: true\n  commonName: Page Test Root\n  duration: 87600h\n  usages: [cert sign, digital signature]\n  targets: []\n"),
		"certificates/web.yaml": cert("web", "web", "internal-ca",
			"  dnsNames: [web.example.test]\n  duration: 720h\n  targets:\n    - {cluster: dev, namespaces: [web]}\n    - {cluster: prod, namespaces: [web]}\n"),
		"certificates/api.yaml": cert("api", "api", "internal-ca",
			"  dnsNames: [api.example.test]\n  targets:\n    - {cluster: dev, namespaces: [api]}\n"),
		"certificates/api-client.yaml": cert("api", "api-client", "internal-ca",
			"  commonName: api-client\n  dnsNames: [client.example.test]\n  duration: 168h\n  usages: [digital signature, client auth]\n"),
		"certificates/orphan.yaml": cert("web", "orphan", "lost-ca",
			"  dnsNames: [orphan.example.test]\n"),
	}
}

// TestStatusPageInChromium runs the daemon on a real Git server, lets it
// make a pass, and loads its status page in Debian's headless Chromium: the
// page lists every certificate, the script ran, the timeline has a marker
// per certificate; a screenshot is saved as a test artifact.
func TestStatusPageInChromium(t *testing.T) {
	browser := chromiumPath(t)
	g := peer.StartGit(t, peer.GitOptions{})
	g.CreateRepo(t, "certs.git")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	idFile := filepath.Join(tmp, "age.key")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g.SeedFiles(t, "certs.git", "main", pageRepo(id.Recipient().String()))

	f := daemonFlags{repo: g.URL("http", "certs.git"), branch: "main", stateDir: filepath.Join(tmp, "state"),
		ageIdentity: idFile, interval: time.Hour, logLevel: "error", logFormat: "text"}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec, repo, err := f.build(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", peer.FreePort(t)) // outside the ephemeral range: see peer.FreePort
	done := make(chan error, 1)
	go func() {
		done <- serveDaemon(ctx, log, rec, time.Hour, addr, nil, nil, newGitHistory(repo.GitDir(), repo.Head))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	base := "http://" + addr
	deadline := time.Now().Add(120 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon never became ready (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// What the pass did, from the status API: four issued, one failed.
	resp, err := http.Get(base + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st reconciler.Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var names, failed []string
	for _, c := range st.Certificates {
		names = append(names, c.Name)
		if state, _ := certState(c); state == pageFailed {
			failed = append(failed, c.Name)
		}
	}
	wantNames := []string{"api/api", "api/api-client", "platform/root-ca", "web/orphan", "web/web"}
	if !slices.Equal(names, wantNames) || !slices.Equal(failed, []string{"web/orphan"}) || st.Pushed == "" {
		t.Fatalf("the pass: certificates %v, failed %v, pushed %q; want %v, [web/orphan] and a push (problems %v, error %q)",
			names, failed, st.Pushed, wantNames, st.Problems, st.Error)
	}

	// The page as Chromium builds it, after the script ran.
	dom := runChromium(t, browser, func(out string) error {
		if !strings.Contains(out, "</html>") {
			return fmt.Errorf("dumped %d bytes, no document", len(out))
		}
		return nil
	}, "--dump-dom", base+"/")
	doc, err := html.Parse(strings.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	var rows, markers []string
	ready := false
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		cert, isCert := attr(n, "data-cert")
		switch {
		case n.Data == "body":
			v, _ := attr(n, "data-ready")
			ready = v == "true"
		case n.Data == "tr" && isCert:
			rows = append(rows, cert)
		case n.Data == "g" && isCert && hasClass(n, "marker"):
			if _, ok := findChild(n, "circle"); ok {
				markers = append(markers, cert)
			}
		}
	}
	slices.Sort(markers)
	if !ready {
		t.Errorf("body has no data-ready=\"true\": the page's script did not run\n%s", dom)
	}
	if !slices.Equal(rows, wantNames) {
		t.Errorf("table rows: got %v, want %v", rows, wantNames)
	}
	if !slices.Equal(markers, wantNames) {
		t.Errorf("timeline markers: got %v, want one per certificate %v", markers, wantNames)
	}
	if !strings.Contains(dom, `class="badge state-failed">failed<`) || !strings.Contains(dom, "lost-ca") {
		t.Errorf("the failing certificate is not shown as failed")
	}
	// The issuance history comes from Git (package history): four issued
	// certificates, one issuance each, read from the pass' commit.
	if n := strings.Count(dom, "<summary>1 issuance</summary>"); n != len(wantNames)-1 {
		t.Errorf("history read from Git for %d certificates, want %d", n, len(wantNames)-1)
	}
	if strings.Contains(dom, "history unavailable") || strings.Contains(dom, "(last known)") {
		t.Error("the page did not read the history from Git")
	}

	// A screenshot of the whole page, kept as the test's artifact.
	png := filepath.Join(t.ArtifactDir(), "status-page.png")
	runChromium(t, browser, func(string) error {
		_, err := os.Stat(png)
		return err
	}, "--screenshot="+png, "--window-size=1280,1600", "--hide-scrollbars", base+"/")
	b, err := os.ReadFile(png)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 1024 {
		t.Fatalf("screenshot %s: %d bytes starting %q, want a PNG", png, len(b), b[:min(len(b), 8)])
	}
	t.Logf("screenshot: %s (%d bytes)", png, len(b))
}

func findChild(n *html.Node, tag string) (*html.Node, bool) {
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && c.Data == tag {
			return c, true
		}
	}
	return nil, false
}

// chromiumPath finds Debian's chromium; its absence fails the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found on PATH: install the Debian package chromium (`make deps`, scripts/install-deps.sh)")
	return ""
}

// runChromium runs headless Chromium once more if it crashes or hangs (a
// loaded machine can starve its GPU-less renderer), each time with a fresh
// profile, home and XDG folders, in its own process group that is killed
// at the end. done tells whether a run that exited cleanly did its work
// (a renderer crash can end in exit status 0). It returns standard output.
func runChromium(t *testing.T, browser string, done func(stdout string) error, args ...string) string {
	t.Helper()
	var errs []error
	for attempt := 1; attempt <= 2; attempt++ {
		out, stderr, err := chromiumOnce(t, browser, args...)
		if err == nil {
			if err = done(out); err == nil {
				return out
			}
			err = fmt.Errorf("%w\nstderr:\n%s", err, stderr)
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
	}
	t.Fatalf("chromium %s:\n%v", strings.Join(args, " "), errors.Join(errs...))
	return ""
}

func chromiumOnce(t *testing.T, browser string, args ...string) (stdout, stderr string, err error) {
	home := t.TempDir()
	dirs := map[string]string{}
	for _, d := range []string{"profile", "config", "cache", "data", "runtime"} {
		dirs[d] = filepath.Join(home, d)
		if err := os.Mkdir(dirs[d], 0o700); err != nil {
			return "", "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + dirs["profile"],
		// Nothing but the page: no update checks, sync or extensions that
		// would reach out to the network.
		"--disable-background-networking", "--disable-component-update", "--disable-extensions",
		"--disable-sync", "--no-default-browser-check",
	}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+dirs["config"], "XDG_CACHE_HOME="+dirs["cache"],
		"XDG_DATA_HOME="+dirs["data"], "XDG_RUNTIME_DIR="+dirs["runtime"])
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Helpers that outlive the browser and keep its pipes open must not
	// hang Wait.
	cmd.WaitDelay = 10 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		return "", "", err
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	err = cmd.Wait()
	// The group is done with either way; its helpers go now, not at cleanup.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after 120s: %w", ctx.Err())
	}
	stderr = tail(errOut.String(), 4000)
	if err != nil {
		return "", stderr, fmt.Errorf("%w\nstderr:\n%s", err, stderr)
	}
	return out.String(), stderr, nil
}

// tail keeps the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
