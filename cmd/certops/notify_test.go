package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/reconciler/notify"
)

// TestNotifyEventsAndWebhook runs `certops reconcile` against a real
// kube-apiserver and a local webhook receiver: an issuance leaves a Normal
// Issued Event on the Secret and one signed Issued payload; a failed
// reissue a Warning IssuanceFailed Event and a Failed payload. No payload
// carries the key.
func TestNotifyEventsAndWebhook(t *testing.T) {
	k, client := startKubeWithNamespace(t, "web")
	ctx := context.Background()
	secret := []byte("notify-test-secret")
	var mu sync.Mutex
	var bodies []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !notify.Verify(secret, b, r.Header.Get(notify.HeaderSignature)) {
			t.Errorf("webhook signature %q does not verify", r.Header.Get(notify.HeaderSignature))
		}
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer rcv.Close()

	tmp := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(tmp, "age.key")
	secretFile := filepath.Join(tmp, "notify-secret")
	writeTestFile(t, keyFile, id.String()+"\n")
	writeTestFile(t, secretFile, string(secret)+"\n")
	work := filepath.Join(tmp, "work")
	files := map[string]string{
		".sops.yaml": "creation_rules:\n  - encrypted_regex: ^(data|stringData)$\n    age: " + id.Recipient().String() + "\n",
		"certops.yaml": "apiVersion: certops.dev/v1alpha1\nkind: Config\nspec:\n  clusters:\n    - name: one\n      kubeconfig: {path: " +
			k.Kubeconfig + "}\n      namespaces: [web]\n",
		"issuers/self.yaml":   "apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: self}\nspec: {selfSigned: {}}\n",
		"issuers/broken.yaml": "apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: broken}\nspec: {ca: {secretName: nowhere}}\n",
		"certificates/web.yaml": `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata: {name: web, namespace: web}
spec:
  dnsNames: [web.example.test]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: self}
  targets: [{cluster: one}]
`,
	}
	for p, s := range files {
		writeTestFile(t, filepath.Join(work, p), s)
	}
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(peer.System(t, "git"), args...)
		cmd.Dir, cmd.Env = dir, peer.GitEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git(work, "init", "-q", "-b", "main")
	git(work, "add", "-A")
	git(work, "commit", "-qm", "specs")
	git(work, "clone", "-q", "--bare", ".", "../remote.git")
	reconcile := func() (string, int) {
		out, errOut, code := run(t, "reconcile", "--repo", "file://"+filepath.Join(tmp, "remote.git"), "--age-identity", keyFile,
			"--state-dir", filepath.Join(tmp, "state"), "--log-level", "error",
			"--notify-url", rcv.URL+"/hooks/certops", "--notify-secret-file", secretFile)
		return out + errOut, code
	}
	events := func() []corev1.Event {
		t.Helper()
		l, err := client.CoreV1().Events("web").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Secret,involvedObject.name=web"})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}

	// 1. Issued: reconcile returns after its notifications went out.
	if out, code := reconcile(); code != 0 {
		t.Fatalf("reconcile: exit %d\n%s", code, out)
	}
	s, err := client.CoreV1().Secrets("web").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	serial := s.Annotations["certops.dev/serial"]
	evs := events()
	if len(evs) != 1 {
		t.Fatalf("%d events on Secret web/web after issuing, want 1: %+v", len(evs), evs)
	}
	e := evs[0]
	if e.Type != corev1.EventTypeNormal || e.Reason != "Issued" || e.ReportingController != "certops" || e.InvolvedObject.UID != s.UID ||
		serial == "" || !strings.Contains(e.Message, serial) || !strings.Contains(e.Message, "not after") {
		t.Errorf("event %+v; want Normal Issued by certops on the Secret's UID %s, naming serial %q and not-after", e, s.UID, serial)
	}
	mu.Lock()
	got := append([]string(nil), bodies...)
	mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0], `"kind":"Issued"`) || !strings.Contains(got[0], serial) {
		t.Fatalf("webhook payloads %q; want one Issued with serial %s", got, serial)
	}
	var p notify.Payload
	if err := json.Unmarshal([]byte(got[0]), &p); err != nil || p.Commit == "" || len(p.Targets) != 1 || p.Targets[0].Cluster != "one" {
		t.Errorf("payload %+v (%v); want the pushed commit and target one/web/web", p, err)
	}

	// 2. A reissue through an issuer that cannot sign: a Warning.
	work2 := filepath.Join(tmp, "work2")
	git(tmp, "clone", "-q", "remote.git", work2)
	writeTestFile(t, filepath.Join(work2, "certificates/web.yaml"), strings.Replace(files["certificates/web.yaml"], "name: self", "name: broken", 1))
	git(work2, "commit", "-qam", "move web to the broken issuer")
	git(work2, "push", "-q", "origin", "main")
	if out, code := reconcile(); code != 1 || !strings.Contains(out, "nowhere") {
		t.Fatalf("reconcile with a broken issuer: exit %d, want 1 naming the missing CA Secret\n%s", code, out)
	}
	var warning *corev1.Event
	for _, e := range events() {
		if e.Type == corev1.EventTypeWarning {
			warning = &e
		}
	}
	if warning == nil || warning.Reason != "IssuanceFailed" || !strings.Contains(warning.Message, "nowhere") || warning.InvolvedObject.UID != s.UID {
		t.Fatalf("warning %+v; want IssuanceFailed on the Secret naming the error", warning)
	}
	mu.Lock()
	got = append([]string(nil), bodies...)
	mu.Unlock()
	if len(got) != 2 || !strings.Contains(got[1], `"kind":"Failed"`) {
		t.Fatalf("webhook payloads %q; want Issued then Failed", got)
	}

	// No payload or event carries the key, in PEM or as bytes.
	block, _ := pem.Decode(s.Data["tls.key"])
	if block == nil {
		t.Fatal("tls.key in the cluster is not PEM")
	}
	keyB64 := base64.StdEncoding.EncodeToString(block.Bytes)
	all := strings.Join(got, "\n")
	for _, e := range events() {
		all += "\n" + e.Message
	}
	for _, leak := range []string{"PRIVATE KEY", keyB64[:40], keyB64[len(keyB64)-40:], string(secret)} {
		if strings.Contains(all, leak) {
			t.Errorf("notifications carry %q", leak)
		}
	}
}
