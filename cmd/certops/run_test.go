package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/reconciler"
)

// TestRunServesStatusMetricsAndWebhook runs the daemon on the quick-start
// (on a local remote, Git only) and reads what it serves.
func TestRunServesStatusMetricsAndWebhook(t *testing.T) {
	git := peer.System(t, "git")
	tmp := t.TempDir()
	id := filepath.Join(tmp, "age.key")
	work := filepath.Join(tmp, "work")
	if _, errOut, code := run(t, "init", "--identity", id, work); code != 0 {
		t.Fatal(errOut)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-qm", "specs"}} {
		cmd := exec.Command(git, args...)
		cmd.Dir, cmd.Env = work, peer.GitEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	cmd := exec.Command(git, "clone", "-q", "--bare", work, filepath.Join(tmp, "remote.git"))
	cmd.Env = peer.GitEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	// The Git counters are process-wide, and an earlier test's daemon may
	// have counted an error (an ls-remote cut short by its shutdown).
	gitErrorsBefore := gitErrors(t)
	f := daemonFlags{repo: "file://" + filepath.Join(tmp, "remote.git"), branch: "main", stateDir: filepath.Join(tmp, "state"),
		ageIdentity: id, interval: time.Hour, logLevel: "error", logFormat: "text"}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	rec, repo, err := f.build(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", peer.FreePort(t)) // outside the ephemeral range: see peer.FreePort
	secret := []byte("hook-secret")
	done := make(chan error, 1)
	go func() { done <- runDaemon(ctx, log, rec, time.Hour, addr, secret) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	base := "http://" + addr
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get("/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon never became ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	_, body := get("/api/v1/status")
	var st reconciler.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status: %v\n%s", err, body)
	}
	if len(st.Certificates) != 4 || st.Pushed == "" {
		t.Fatalf("status: %d certificates, pushed %q; want 4 and a push", len(st.Certificates), st.Pushed)
	}
	for _, c := range st.Certificates {
		if len(c.Conditions) == 0 || c.Conditions[0].Type != "Ready" || c.Conditions[0].Status != "True" {
			t.Errorf("%s: conditions %+v, want Ready=True", c.Name, c.Conditions)
		}
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		`certops_certificate_expiration_timestamp_seconds{issuer_name="internal-ca",name="web",namespace="web"}`,
		`certops_certificate_not_before_timestamp_seconds{issuer_name="internal-ca",name="web",namespace="web"}`,
		`certops_certificate_renewal_timestamp_seconds{issuer_name="internal-ca",name="web",namespace="web"}`,
		`certops_certificate_ready_status{condition="True",issuer_name="internal-ca",name="web",namespace="web"} 1`,
		`certops_issuance_total{issuer_name="internal-ca",result="issued"} 3`,
		`certops_passes_total{result="ok"} 1`,
		`certops_pass_duration_seconds_count 1`,
		`certops_leader 1`,
		// The first pass clones, commits and pushes; every row is a success
		// (the counters are process-wide, so other tests may add to them).
		`certops_git_operations_total{operation="clone",result="success"}`,
		`certops_git_operations_total{operation="commit",result="success"}`,
		`certops_git_operations_total{operation="push",result="success"}`,
		`certops_git_operation_duration_seconds_count{operation="push"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if after := gitErrors(t); !maps.Equal(gitErrorsBefore, after) {
		t.Errorf("failed Git operations by this daemon: %v before it started, %v after its pass\n%s", gitErrorsBefore, after, grepLines(metrics, `result="error"`))
	}
	// The push webhook: a bad signature is refused; GitHub's HMAC and
	// GitLab's token start a pass.
	post := func(h http.Header, body string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/hooks/git", strings.NewReader(body))
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	payload := `{"ref":"refs/heads/main"}`
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(payload))
	if code := post(http.Header{"X-Hub-Signature-256": {"sha256=" + strings.Repeat("0", 64)}}, payload); code != http.StatusUnauthorized {
		t.Errorf("forged GitHub signature: %d, want 401", code)
	}
	if code := post(http.Header{}, payload); code != http.StatusUnauthorized {
		t.Errorf("unsigned hook: %d, want 401", code)
	}
	if code := post(http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}}, payload); code != http.StatusAccepted {
		t.Errorf("GitHub hook: %d, want 202", code)
	}
	if code := post(http.Header{"X-Gitlab-Token": {string(secret)}}, payload); code != http.StatusAccepted {
		t.Errorf("GitLab hook: %d, want 202", code)
	}
	// The two accepted hooks started more passes (one or two: a hook that
	// arrives while one is queued joins it).
	for {
		_, m := get("/metrics")
		if strings.Contains(m, `certops_passes_total{result="ok"} 2`) || strings.Contains(m, `certops_passes_total{result="ok"} 3`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook did not start a pass:\n%s", grepLines(m, "certops_passes_total"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// gitErrors is the process-wide count of failed Git operations, by
// operation.
func gitErrors(t *testing.T) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(gitOperations); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["result"] == "error" {
				out[labels["operation"]] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}
