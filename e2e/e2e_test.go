// Package e2e runs certops' whole path against real peers on loopback: a git
// server over HTTP with auth, Pebble validating DNS-01 through BIND, two
// kube-apiservers, the sops CLI and openssl. The certops binary is built and
// run as a process, as an operator would run it.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/e2e/peer/kubepeer"
)

// buildCertops builds the binary under test.
func buildCertops(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "certops")
	cmd := exec.Command("go", "build", "-o", bin, "certops.dev/certops/cmd/certops")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building certops: %v\n%s", err, out)
	}
	return bin
}

// pebbleCAPEM returns the certificate Pebble's listener presents (self-signed
// for loopback), for the issuer's caBundle.
func pebbleCAPEM(t *testing.T, dirURL string) []byte {
	t.Helper()
	u, err := url.Parse(dirURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true}) // only to read the test server's certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b bytes.Buffer
	for _, c := range conn.ConnectionState().PeerCertificates {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// pebbleIssuerYAML is an ACME Issuer for pebble that solves DNS-01 through
// bind over RFC 2136; the daemon needs dnsupdateEnv(bind) for the TSIG secret.
func pebbleIssuerYAML(t *testing.T, pebble *peer.Pebble, bind *peer.BIND) string {
	t.Helper()
	caBundle := base64.StdEncoding.EncodeToString(pebbleCAPEM(t, pebble.DirectoryURL))
	return fmt.Sprintf(`apiVersion: certops.dev/v1alpha1
kind: Issuer
metadata: {name: pebble}
spec:
  acme:
    server: %s
    email: ops@example.test
    profile: default
    caBundle: %s
    solvers:
      - dns01:
          provider: dnsupdate
          settings: {NAMESERVER: %q, TSIG_KEY: %q, TSIG_ALGORITHM: %q}
          nameservers: [%q]
          disablePropagationCheck: true
`, pebble.DirectoryURL, caBundle, bind.Addr, bind.TSIGName, bind.TSIGAlgorithm, bind.Addr)
}

// dnsupdateEnv is the daemon environment of pebbleIssuerYAML's solver: the
// TSIG secret (never in the repository) and quick polling.
func dnsupdateEnv(bind *peer.BIND) []string {
	return []string{"DNSUPDATE_TSIG_SECRET=" + bind.TSIGSecret, "DNSUPDATE_SEQUENCE_INTERVAL=1",
		"DNSUPDATE_PROPAGATION_TIMEOUT=60", "DNSUPDATE_POLLING_INTERVAL=1"}
}

// writeAgeIdentity writes a fresh age identity (mode 0600) into dir.
func writeAgeIdentity(t *testing.T, dir string) (*age.X25519Identity, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "age.key")
	if err := os.WriteFile(file, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return id, file
}

// killedBySIGKILL reports whether err is the exit of a process killed with
// SIGKILL (a crash point of reconciler.CrashEnv).
func killedBySIGKILL(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
}

type world struct {
	t        *testing.T
	bin      string
	git      *peer.Git
	bind     *peer.BIND
	pebble   *peer.Pebble
	kubes    [2]*kubepeer.Kube
	clients  [2]kubernetes.Interface
	identity *age.X25519Identity
	keyFile  string
	tmp      string
	remote   string
	// signingKey is the OpenSSH key certops signs its commits with;
	// signers is the allowed-signers file `git verify-commit` checks them
	// against.
	signingKey, signers string
	// allowExec is the daemon's --allow-exec (empty: no exec issuer runs).
	allowExec string
}

// env is the environment every certops process of the scenario runs with:
// the repository, the age identity, the state, the signing key and the
// DNS-01 solver's secret. Flags given on a command line win over it.
func (w *world) env() []string {
	env := append(os.Environ(),
		"SOPS_AGE_KEY_FILE="+w.keyFile,
		"CERTOPS_REPO="+w.remote,
		"CERTOPS_STATE_DIR="+filepath.Join(w.tmp, "state"),
		"CERTOPS_LOG_LEVEL=warn",
		"CERTOPS_SIGNING_KEY="+w.signingKey,
		"CERTOPS_ALLOW_EXEC="+w.allowExec,
	)
	return append(env, dnsupdateEnv(w.bind)...)
}

func (w *world) certops(args ...string) (string, error) {
	w.t.Helper()
	cmd := exec.Command(w.bin, args...)
	cmd.Env = w.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("certops %v: %w\n%s%s", args, err, out, stderr.String())
	}
	return string(out), nil
}

func (w *world) reconcile() string {
	w.t.Helper()
	out, err := w.certops("reconcile")
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

func (w *world) secret(i int, ns, name string) *corev1.Secret {
	w.t.Helper()
	s, err := w.clients[i].CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		w.t.Fatalf("cluster %d: get %s/%s: %v", i+1, ns, name, err)
	}
	return s
}

func (w *world) lastCommit() string {
	return w.git.Run(w.t, w.git.Dir("repo.git"), "log", "-1", "--format=%an%n%B", "main")
}

func TestWholePath(t *testing.T) {
	w := &world{t: t, tmp: t.TempDir()}
	w.bin = buildCertops(t)
	w.git = peer.StartGit(t, peer.GitOptions{Username: "certops", Password: "e2e-pass"})
	w.bind = peer.StartBIND(t, "example.test")
	w.pebble = peer.StartPebble(t, peer.PebbleOptions{DNSServer: w.bind.Addr})
	for i := range w.kubes {
		w.kubes[i] = kubepeer.StartKube(t)
		c, err := kubernetes.NewForConfig(w.kubes[i].Config)
		if err != nil {
			t.Fatal(err)
		}
		w.clients[i] = c
		for _, ns := range []string{"web", "apps"} {
			if _, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.identity, w.keyFile = writeAgeIdentity(t, w.tmp)
	w.remote = strings.Replace(w.git.URL("http", "repo.git"), "http://", "http://certops:e2e-pass@", 1)
	w.signingKey, w.signers = sshSigningKey(t, w.tmp)

	files := map[string]string{
		"certops.yaml": fmt.Sprintf(`apiVersion: certops.dev/v1alpha1
kind: Config
spec:
  clusters:
    - name: one
      kubeconfig: {path: %q}
      namespaces: [web, apps]
      prune: true
    - name: two
      kubeconfig: {path: %q}
      namespaces: [web, apps]
      prune: true
  commit: {authorName: certops-bot, authorEmail: bot@example.test}
  policy:
    defaultAction: Deny
    rules:
      - name: platform
        paths: ["certificates/platform/**"]
        issuers: [root]
        allowCA: true
      - name: apps
        paths: ["certificates/apps/**"]
        dnsNames: ["*.example.test"]
        issuers: [pebble, internal, cli]
`, w.kubes[0].Kubeconfig, w.kubes[1].Kubeconfig),
		".sops.yaml":            "creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: " + w.identity.Recipient().String() + "\n",
		"issuers/pebble.yaml":   pebbleIssuerYAML(t, w.pebble, w.bind),
		"issuers/root.yaml":     "apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: root}\nspec: {selfSigned: {}}\n",
		"issuers/internal.yaml": "apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: internal}\nspec: {ca: {secretName: root-ca}}\n",
		"certificates/platform/root-ca.yaml": `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata: {name: root-ca, namespace: platform}
spec:
  isCA: true
  commonName: E2E Root
  privateKey: {algorithm: ECDSA}
  usages: [cert sign, crl sign]
  issuerRef: {name: root}
  targets: []
`,
		"certificates/apps/web.yaml": `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata: {name: web, namespace: web}
spec:
  secretName: web-tls
  dnsNames: [web.example.test]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: pebble}
  targets:
    - {cluster: one, namespaces: [web]}
    - {cluster: two, namespaces: [web]}
`,
	}
	w.git.SeedFiles(t, "repo.git", "main", files)

	// 1. The first pass: ACME over DNS-01 at Pebble (validated through
	// BIND) and the private root, in one commit, applied to both clusters.
	w.reconcile()
	msg := w.lastCommit()
	for _, want := range []string{"certops-bot", "Certificate: web/web", "Issuer: pebble", "Certificate: platform/root-ca", "Reason: DoesNotExist", "Serial: ", "Not-After: "} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit lacks %q:\n%s", want, msg)
		}
	}
	w.verifySigned("main")
	ordersAfterFirst := w.pebble.Orders()
	if ordersAfterFirst != 1 {
		t.Errorf("Pebble saw %d orders, want 1", ordersAfterFirst)
	}
	work := w.git.Clone(t, "repo.git", "main")
	plain := peer.SopsDecrypt(t, w.keyFile, filepath.Join(work, "secrets/web/web-tls.yaml"))
	if !strings.Contains(plain, "tls.key") {
		t.Fatal("sops -d shows no tls.key")
	}
	chain := filepath.Join(w.tmp, "web-chain.pem")
	if out, err := w.certops("export", "web/web", work, "--chain"); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(chain, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	var roots bytes.Buffer
	for _, r := range w.pebble.Roots(t) {
		pem.Encode(&roots, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})
	}
	rootsFile := filepath.Join(w.tmp, "pebble-roots.pem")
	os.WriteFile(rootsFile, roots.Bytes(), 0o644)
	opensslVerify(t, rootsFile, chain)
	for i := range w.clients {
		s := w.secret(i, "web", "web-tls")
		if s == nil || len(s.Data["tls.key"]) == 0 || s.Labels["app.kubernetes.io/managed-by"] != "certops" {
			t.Fatalf("cluster %d: web/web-tls missing or incomplete: %+v", i+1, s)
		}
		if s.Annotations["cert-manager.io/issuer-name"] != "pebble" || s.Annotations["certops.dev/serial"] == "" {
			t.Errorf("cluster %d: annotations %v", i+1, s.Annotations)
		}
	}

	// 2. A pull-request-like commit adds a certificate from the private CA:
	// only it is issued, and it reaches both clusters.
	w.git.SeedFiles(t, "repo.git", "main", map[string]string{"certificates/apps/api.yaml": `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata: {name: api, namespace: apps}
spec:
  dnsNames: [api.example.test]
  duration: 24h
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: internal}
  targets:
    - {cluster: one, namespaces: [apps]}
    - {cluster: two, namespaces: [apps]}
`})
	w.reconcile()
	if msg := w.lastCommit(); !strings.Contains(msg, "Certificate: apps/api") || strings.Contains(msg, "Certificate: web/web") {
		t.Errorf("the added certificate's commit:\n%s", msg)
	}
	for i := range w.clients {
		if w.secret(i, "apps", "api") == nil {
			t.Errorf("cluster %d: apps/api missing", i+1)
		}
	}
	api := w.git.Clone(t, "repo.git", "main")
	apiChain := filepath.Join(w.tmp, "api.pem")
	rootPEM := filepath.Join(w.tmp, "root.pem")
	for file, name := range map[string]string{apiChain: "apps/api", rootPEM: "platform/root-ca"} {
		out, err := w.certops("export", name, api, "--chain")
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(file, []byte(out), 0o644)
	}
	opensslVerify(t, rootPEM, apiChain)

	// 3. A renewal requested in Git (certops.dev/renew), then a spec edit
	// that re-issues.
	serialBefore := w.secret(0, "apps", "api").Annotations["certops.dev/serial"]
	w.git.SeedFiles(t, "repo.git", "main", map[string]string{"certificates/apps/api.yaml": strings.Replace(
		readFile(t, filepath.Join(api, "certificates/apps/api.yaml")), "namespace: apps}", "namespace: apps, annotations: {certops.dev/renew: \"1\"}}", 1)})
	w.reconcile()
	if msg := w.lastCommit(); !strings.Contains(msg, "Reason: ManuallyTriggered") {
		t.Errorf("renewal commit:\n%s", msg)
	}
	serialRenewed := w.secret(1, "apps", "api").Annotations["certops.dev/serial"]
	if serialRenewed == serialBefore || serialRenewed == "" {
		t.Errorf("renewal kept serial %s in cluster two", serialBefore)
	}
	edited := w.git.Clone(t, "repo.git", "main")
	w.git.SeedFiles(t, "repo.git", "main", map[string]string{"certificates/apps/api.yaml": strings.Replace(
		readFile(t, filepath.Join(edited, "certificates/apps/api.yaml")), "[api.example.test]", "[api.example.test, api2.example.test]", 1)})
	w.reconcile()
	if msg := w.lastCommit(); !strings.Contains(msg, "Reason: SpecChanged") {
		t.Errorf("re-issue commit:\n%s", msg)
	}
	if s := w.secret(0, "apps", "api"); !strings.Contains(s.Annotations["cert-manager.io/alt-names"], "api2.example.test") {
		t.Errorf("cluster one holds the old certificate: %v", s.Annotations)
	}

	// 4. Removing the spec removes the file and prunes both clusters.
	rm := w.git.Clone(t, "repo.git", "main")
	w.git.Run(t, rm, "rm", "--quiet", "certificates/apps/api.yaml")
	w.git.Run(t, rm, "commit", "--quiet", "-m", "Retire api")
	w.git.Run(t, rm, "push", "--quiet", "origin", "HEAD:main")
	w.reconcile()
	for i := range w.clients {
		if w.secret(i, "apps", "api") != nil {
			t.Errorf("cluster %d: apps/api not pruned", i+1)
		}
		if w.secret(i, "web", "web-tls") == nil {
			t.Errorf("cluster %d: prune removed web/web-tls", i+1)
		}
	}
	if _, err := os.Stat(filepath.Join(w.git.Clone(t, "repo.git", "main"), "secrets/apps/api.yaml")); !os.IsNotExist(err) {
		t.Errorf("secrets/apps/api.yaml still in Git: %v", err)
	}

	// 5. Cluster two is wiped: its Secrets come back from Git with no new
	// ACME order.
	if err := w.clients[1].CoreV1().Secrets("web").Delete(context.Background(), "web-tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ordersBefore := w.pebble.Orders()
	w.reconcile()
	if s := w.secret(1, "web", "web-tls"); s == nil || len(s.Data["tls.crt"]) == 0 {
		t.Error("cluster two was not rebuilt from Git")
	}
	if got := w.pebble.Orders(); got != ordersBefore {
		t.Errorf("rebuilding a cluster made %d new ACME orders, want 0", got-ordersBefore)
	}

	// 6. An unchanged pass writes nothing to either cluster.
	writes := [2]int{w.kubes[0].WriteCount(t, "secrets"), w.kubes[1].WriteCount(t, "secrets")}
	w.reconcile()
	for i := range w.kubes {
		if got := w.kubes[i].WriteCount(t, "secrets"); got != writes[i] {
			t.Errorf("cluster %d: an unchanged pass made %d Secret writes", i+1, got-writes[i])
		}
	}

	// 7. A human commit lands on the branch while a pass is issuing: the
	// exec issuer's command pushes one before it signs. certops' push is
	// rejected, it re-applies its commit on the human one, and both
	// survive.
	w.humanCommitDuringPass()

	// 8. The daemon, as a process, renews a certificate whose renewal time
	// comes within a minute (duration 1h, renewBefore 59m15s), commits the
	// renewal signed, and applies it.
	w.daemonRenews()

	// 9. `certops history` tells each event of the scenario, in order, with
	// the commit that caused it, as git itself finds it.
	w.historyMatchesGit()

	// Every commit certops made is signed with its key.
	for _, line := range strings.Split(w.git.Run(t, w.git.Dir("repo.git"), "log", "--format=%H %an", "main"), "\n") {
		if hash, author, _ := strings.Cut(line, " "); author == "certops-bot" {
			w.verifySigned(hash)
		}
	}

	// No private key in clear text in any Git object or the daemon's state.
	if objects := w.git.Run(t, w.git.Dir("repo.git"), "cat-file", "--batch-all-objects", "--batch"); strings.Contains(objects, "PRIVATE KEY") {
		t.Error("a Git object holds a plaintext private key")
	}
	filepath.WalkDir(filepath.Join(w.tmp, "state"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("PRIVATE KEY")) {
				t.Errorf("%s holds a plaintext private key", p)
			}
		}
		return nil
	})
}

func opensslVerify(t *testing.T, caFile, chainFile string) {
	t.Helper()
	// The leaf is the first certificate; the rest are untrusted intermediates.
	data, err := os.ReadFile(chainFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, rest := pem.Decode(data)
	if blk == nil {
		t.Fatalf("%s holds no certificate", chainFile)
	}
	leaf := chainFile + ".leaf"
	os.WriteFile(leaf, pem.EncodeToMemory(blk), 0o644)
	args := []string{"verify", "-CAfile", caFile}
	if len(bytes.TrimSpace(rest)) > 0 {
		inter := chainFile + ".inter"
		os.WriteFile(inter, rest, 0o644)
		args = append(args, "-untrusted", inter)
	}
	out, err := exec.Command(peer.System(t, "openssl"), append(args, leaf)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Errorf("openssl verify %s: %v\n%s", chainFile, err, out)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
