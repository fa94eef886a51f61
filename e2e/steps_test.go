package e2e

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"certops.dev/certops/e2e/peer"
)

// sshSigningKey writes a fresh OpenSSH signing key (test only, in dir) and an
// allowed-signers file that trusts it, and returns both paths.
func sshSigningKey(t *testing.T, dir string) (keyFile, signersFile string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "certops e2e")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(dir, "signing-key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signersFile = filepath.Join(dir, "allowed_signers")
	line := "bot@example.test " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + "\n"
	if err := os.WriteFile(signersFile, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyFile, signersFile
}

// verifySigned checks rev's signature with the git CLI against the allowed
// signers.
func (w *world) verifySigned(rev string) {
	w.t.Helper()
	out, err := w.git.RunErr(w.git.Dir("repo.git"), "-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile="+w.signers,
		"verify-commit", "-v", rev)
	if err != nil {
		w.t.Errorf("git verify-commit %s: %v\n%s", rev, err, out)
	}
}

// humanCommitScript is the exec issuer of step 7: on its first call it
// pushes a human commit to the branch (as a colleague merging a pull request
// mid-pass would), then signs the CSR with openssl.
const humanCommitScript = `#!/bin/sh
set -eu
if [ ! -e "$MARK" ]; then
  touch "$MARK"
  work=$(mktemp -d)
  git clone -q "$REMOTE" "$work/w"
  echo "edited while certops was issuing" >> "$work/w/README.md"
  git -C "$work/w" add README.md
  git -C "$work/w" commit -qm "A human commit during the pass"
  git -C "$work/w" push -q origin HEAD:main
  rm -rf "$work"
fi
openssl x509 -req -CA "$CA_CERT" -CAkey "$CA_KEY" -days "$CERTOPS_DURATION_DAYS" \
  -set_serial "0x$(openssl rand -hex 16)" -copy_extensions copyall 2>/dev/null
cat "$CA_CERT"
`

func (w *world) humanCommitDuringPass() {
	t := w.t
	t.Helper()
	dir := filepath.Join(w.tmp, "cli-ca")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A test-only CA for the exec issuer, made by openssl; its key stays in
	// the test's temporary folder.
	if out, err := exec.Command(peer.System(t, "openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
		"-nodes", "-keyout", filepath.Join(dir, "ca.key"), "-out", filepath.Join(dir, "ca.crt"), "-subj", "/CN=E2E CLI CA",
		"-days", "2", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign").CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	script := filepath.Join(dir, "sign.sh")
	if err := os.WriteFile(script, []byte(humanCommitScript), 0o755); err != nil {
		t.Fatal(err)
	}
	gitDir := filepath.Dir(peer.System(t, "git"))
	before := w.git.Head(t, "repo.git", "main")
	w.git.SeedFiles(t, "repo.git", "main", map[string]string{
		"issuers/cli.yaml": fmt.Sprintf(`apiVersion: certops.dev/v1alpha1
kind: Issuer
metadata: {name: cli}
spec:
  exec:
    command: [%q]
    timeout: 2m
    env:
      PATH: %q
      MARK: %q
      REMOTE: %q
      CA_CERT: %q
      CA_KEY: %q
      GIT_CONFIG_GLOBAL: /dev/null
      GIT_CONFIG_NOSYSTEM: "1"
      GIT_AUTHOR_NAME: Pat Colleague
      GIT_AUTHOR_EMAIL: pat@example.test
      GIT_COMMITTER_NAME: Pat Colleague
      GIT_COMMITTER_EMAIL: pat@example.test
`, script, gitDir+":/usr/bin:/bin", filepath.Join(dir, "pushed"), w.git.Dir("repo.git"),
			filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")),
		"certificates/apps/cli.yaml": `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata: {name: cli, namespace: apps}
spec:
  dnsNames: [cli.example.test]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: cli}
  targets: []
`,
	})
	seeded := w.git.Head(t, "repo.git", "main")
	if seeded == before {
		t.Fatal("seeding the exec issuer made no commit")
	}
	// The repository alone cannot make the daemon run a program: until its
	// operator allows the command, the issuer is refused, naming the file.
	if out, err := w.certops("reconcile"); err == nil || !strings.Contains(err.Error(), "issuers/cli.yaml") ||
		!strings.Contains(err.Error(), "--allow-exec") {
		t.Fatalf("an exec issuer ran without --allow-exec: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "pushed")); !os.IsNotExist(err) {
		t.Fatalf("the exec issuer's command ran without --allow-exec (%v)", err)
	}
	w.allowExec = script
	defer func() { w.allowExec = "" }()
	w.reconcile()
	if _, err := os.Stat(filepath.Join(dir, "pushed")); err != nil {
		t.Fatalf("the exec issuer never pushed its human commit: %v", err)
	}
	// Newest first: certops' commit, on top of the human one, on top of the
	// seed.
	log := strings.Split(w.git.Run(t, w.git.Dir("repo.git"), "log", "--format=%an|%s|%P", "-3", "main"), "\n")
	if len(log) != 3 {
		t.Fatalf("log:\n%s", strings.Join(log, "\n"))
	}
	if !strings.HasPrefix(log[0], "certops-bot|") || !strings.HasPrefix(log[1], "Pat Colleague|A human commit during the pass|") ||
		!strings.HasSuffix(log[1], "|"+seeded) {
		t.Errorf("want certops' commit on the human commit on the seed %s, got:\n%s", seeded, strings.Join(log, "\n"))
	}
	if msg := w.lastCommit(); !strings.Contains(msg, "Certificate: apps/cli") || !strings.Contains(msg, "Issuer: cli") {
		t.Errorf("certops' commit after the race:\n%s", msg)
	}
	work := w.git.Clone(t, "repo.git", "main")
	if !strings.Contains(readFile(t, filepath.Join(work, "README.md")), "edited while certops was issuing") {
		t.Error("the human commit's change is gone from the branch")
	}
	if _, err := os.Stat(filepath.Join(work, "secrets/apps/cli.yaml")); err != nil {
		t.Errorf("certops' file is not on the branch: %v", err)
	}
	w.verifySigned("main")
}

// daemonRenews runs `certops run` as a process and waits for it to issue a
// short-lived certificate and then renew it by itself.
func (w *world) daemonRenews() {
	t := w.t
	t.Helper()
	w.git.SeedFiles(t, "repo.git", "main", map[string]string{"certificates/apps/short.yaml": `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata: {name: short, namespace: apps}
spec:
  dnsNames: [short.example.test]
  duration: 1h
  renewBefore: 59m15s
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: internal}
  targets:
    - {cluster: one, namespaces: [apps]}
`})
	cmd := exec.Command(w.bin, "run", "--interval", "3s", "--listen", "127.0.0.1:0", "--log-level", "info")
	cmd.Env = w.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logPath := filepath.Join(w.tmp, "daemon.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("daemon log:\n%s", tailString(string(b), 6000))
		}
	}()

	// Poll the remote's history: an issuance of apps/short, then a renewal
	// (Reason: Renewing) with a new serial. The renewal time is at most 45 s
	// after issuance; the deadline allows for a loaded machine.
	serialRe := regexp.MustCompile(`(?m)^Serial: (\S+)`)
	var issued, renewed string
	deadline := time.Now().Add(4 * time.Minute)
	for renewed == "" {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not issue and renew apps/short in time (issued serial %q)", issued)
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("the daemon exited: %v", err)
		case <-time.After(time.Second):
		}
		for _, c := range certopsCommits(t, w, "apps/short") {
			switch {
			case strings.Contains(c, "Reason: DoesNotExist") && issued == "":
				issued = firstMatch(serialRe, c)
			case strings.Contains(c, "Reason: Renewing") && issued != "":
				renewed = firstMatch(serialRe, c)
			}
		}
	}
	if renewed == issued || renewed == "" {
		t.Errorf("the renewal kept serial %s", issued)
	}
	// The renewed certificate reaches the cluster.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		s := w.secret(0, "apps", "short")
		if s != nil && s.Annotations["certops.dev/serial"] == renewed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster one does not hold the renewed apps/short (serial %s): %+v", renewed, s)
		}
		time.Sleep(time.Second)
	}

	// SIGTERM ends the daemon cleanly.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("the daemon's exit after SIGTERM: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Error("the daemon did not stop within 2 minutes of SIGTERM")
	}
}

// certopsCommits returns the messages of certops' commits naming cert,
// oldest first, each cut to cert's trailer block.
func certopsCommits(t *testing.T, w *world, cert string) []string {
	t.Helper()
	out := w.git.Run(t, w.git.Dir("repo.git"), "log", "--reverse", "--author=certops-bot", "--format=%B%x00", "main")
	var blocks []string
	for _, msg := range strings.Split(out, "\x00") {
		// Trailer blocks start at "Certificate: NAME" and run to the next.
		sc := bufio.NewScanner(strings.NewReader(msg))
		var cur []string
		in := false
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "Certificate: ") {
				if in {
					blocks = append(blocks, strings.Join(cur, "\n"))
				}
				in, cur = line == "Certificate: "+cert, []string{line}
				continue
			}
			if in {
				cur = append(cur, line)
			}
		}
		if in {
			blocks = append(blocks, strings.Join(cur, "\n"))
		}
	}
	return blocks
}

func firstMatch(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// historyMatchesGit runs `certops history` on a full clone and checks it
// against the scenario and against the git CLI.
func (w *world) historyMatchesGit() {
	t := w.t
	t.Helper()
	clone := w.git.Clone(t, "repo.git", "main")
	out, err := w.certops("history", clone, "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Truncated bool
		Events    []struct {
			Commit, Certificate, Reason, Serial, SpecFile string
			Cause                                         *struct{ Commit, Author, Subject string }
		}
	}
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("history --output json: %v\n%s", err, out)
	}
	if h.Truncated {
		t.Error("history of a full clone says it is truncated")
	}
	// Every Certificate trailer of certops' commits is one event.
	trailers := strings.Fields(w.git.Run(t, clone, "log", "--reverse", "--author=certops-bot",
		"--format=%(trailers:key=Certificate,valueonly)", "main"))
	var got []string
	for _, e := range h.Events {
		got = append(got, e.Certificate)
	}
	if strings.Join(got, " ") != strings.Join(trailers, " ") {
		t.Errorf("history lists\n  %v\nthe commits' trailers name\n  %v", got, trailers)
	}
	// apps/api went through the whole life cycle, each step caused by a
	// human commit on its spec file.
	var reasons []string
	for _, e := range h.Events {
		if e.Certificate != "apps/api" {
			continue
		}
		reasons = append(reasons, e.Reason)
		if e.Cause == nil {
			t.Errorf("event %s of apps/api has no cause", e.Reason)
			continue
		}
		// As `git log -1 EVENT -- SPEC` finds it; for the removal, the
		// commit that deleted the file.
		want := w.git.Run(t, clone, "log", "-1", "--format=%H", e.Commit, "--", "certificates/apps/api.yaml")
		if e.Cause.Commit != want || e.Cause.Author != "Test Human" {
			t.Errorf("apps/api %s: cause %s by %s, git says %s by Test Human", e.Reason, e.Cause.Commit, e.Cause.Author, want)
		}
	}
	if want := "DoesNotExist ManuallyTriggered SpecChanged Deleted"; strings.Join(reasons, " ") != want {
		t.Errorf("apps/api events %v, want %s", reasons, want)
	}
}
