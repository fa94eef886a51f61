package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/e2e/peer/kubepeer"
	"certops.dev/certops/sops"
)

// TestReconcileWithEncryptedKubeconfig reaches a real kube-apiserver
// through a kubeconfig committed SOPS-encrypted in the repository: it is
// decrypted in memory only, and the Secret lands in the cluster.
func TestReconcileWithEncryptedKubeconfig(t *testing.T) {
	k, client := startKubeWithNamespace(t, "web")
	ctx := context.Background()
	tmp := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(tmp, "age.key")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(tmp, "work")
	kubeconfig, err := os.ReadFile(k.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
		"metadata":   map[string]any{"name": "cluster-one", "namespace": "certops-system"},
		"stringData": map[string]string{"kubeconfig": string(kubeconfig)}})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		".sops.yaml": "creation_rules:\n  - encrypted_regex: ^(data|stringData)$\n    age: " + id.Recipient().String() + "\n",
		"certops.yaml": `apiVersion: certops.dev/v1alpha1
kind: Config
spec:
  clusters:
    - name: one
      kubeconfig: {encryptedFile: clusters/one.yaml}
      namespaces: [web]
`,
		"issuers/self.yaml": "apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: self}\nspec: {selfSigned: {}}\n",
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
	trust, err := sops.NewTrust([]string{id.Recipient().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := sops.New(sops.Options{Trust: trust, Identities: sops.Identities{id}})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := codec.Encrypt(os.DirFS(work), "clusters/one.yaml", plain)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(work, "clusters/one.yaml"), string(enc))
	git := peer.System(t, "git")
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-qm", "specs"}, {"clone", "-q", "--bare", ".", "../remote.git"}} {
		cmd := exec.Command(git, args...)
		cmd.Dir, cmd.Env = work, peer.GitEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	out, errOut, code := run(t, "reconcile", "--repo", "file://"+filepath.Join(tmp, "remote.git"), "--age-identity", keyFile,
		"--state-dir", filepath.Join(tmp, "state"), "--log-level", "error")
	if code != 0 || !strings.Contains(errOut, "applied 1 Secret(s)") {
		t.Fatalf("reconcile: exit %d\n%s%s", code, out, errOut)
	}
	s, err := client.CoreV1().Secrets("web").Get(ctx, "web", metav1.GetOptions{})
	if err != nil || len(s.Data["tls.key"]) == 0 || s.Labels["app.kubernetes.io/managed-by"] != "certops" {
		t.Fatalf("Secret web/web in the cluster: %v, %+v", err, s)
	}
	// The kubeconfig was never written in clear text by certops.
	err = filepath.WalkDir(filepath.Join(tmp, "state"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "client-key-data") || strings.Contains(string(b), "PRIVATE KEY") {
				t.Errorf("%s holds a plaintext credential", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeTestFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startKubeWithNamespace starts a real kube-apiserver holding namespace ns
// and returns it with a client.
func startKubeWithNamespace(t *testing.T, ns string) (*kubepeer.Kube, kubernetes.Interface) {
	t.Helper()
	k := kubepeer.StartKube(t)
	client, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return k, client
}
