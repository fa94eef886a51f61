package sops_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgparmor "github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/sops"
)

// runSops runs the real sops CLI in dir with a minimal environment: no
// inherited SOPS_* variables, a HOME of its own (so ~/.config/sops is not
// read), and the version check off (it would reach the internet).
func runSops(t *testing.T, dir string, stdin []byte, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(peer.Bin(t, "sops"), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"SOPS_DISABLE_VERSION_CHECK=1",
	}, env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sops %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

func writeFile(t *testing.T, root, name string, b []byte) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sameYAML(t *testing.T, want, got []byte) {
	t.Helper()
	var w, g map[string]any
	if err := yaml.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("document (-want +got):\n%s", diff)
	}
}

// The sops CLI decrypts what certops writes.
func TestCLIDecryptsCertopsFiles(t *testing.T) {
	a, b := newAgeKey(t), newAgeKey(t)
	repoDir, keyDir := t.TempDir(), t.TempDir()
	rules := ageRules(a, b)
	writeFile(t, repoDir, ".sops.yaml", []byte(rules))
	c := newCodec(t, []ageKey{a, b})
	plain := tlsSecret(t, "web")
	enc, err := c.Encrypt(os.DirFS(repoDir), "secrets/prod/web.yaml", plain)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, repoDir, "secrets/prod/web.yaml", enc)

	for _, k := range []ageKey{a, b} {
		got := runSops(t, repoDir, nil, []string{"SOPS_AGE_KEY_FILE=" + k.keyFile(t, keyDir)}, "decrypt", "secrets/prod/web.yaml")
		sameYAML(t, plain, got)
	}
	// Debian's age opens the data key too.
	var meta sopsKeys
	if err := yaml.Unmarshal(enc, &meta); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(peer.System(t, "age"), "--decrypt", "-i", a.keyFile(t, keyDir))
	cmd.Stdin = strings.NewReader(meta.Sops.Age[0].Enc)
	out, err := cmd.Output()
	if err != nil || len(out) != 32 {
		t.Errorf("age --decrypt: got %d bytes, %v; want the 32-byte data key", len(out), err)
	}
	assertNoPrivateKey(t, repoDir)
	assertNoPrivateKey(t, keyDir)
}

// certops decrypts what `sops encrypt --encrypted-regex` writes, and treats
// it as up to date: no rewrite, no re-key.
func TestCertopsDecryptsCLIFiles(t *testing.T) {
	a := newAgeKey(t)
	repoDir := t.TempDir()
	// A rule with recipients only: the layout comes from the flag.
	rules := "creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    age: " + a.recipient + "\n"
	writeFile(t, repoDir, ".sops.yaml", []byte(rules))
	plain := tlsSecret(t, "web")
	// The plaintext goes through stdin, never to disk.
	enc := runSops(t, repoDir, plain, nil,
		"encrypt", "--filename-override", "secrets/prod/web.yaml",
		"--input-type", "yaml", "--output-type", "yaml",
		"--encrypted-regex", "^(data|stringData)$")
	if bytes.Contains(enc, []byte("PRIVATE KEY")) {
		t.Fatal("sops CLI output holds the private key in clear text")
	}
	writeFile(t, repoDir, "secrets/prod/web.yaml", enc)

	c := newCodec(t, []ageKey{a}, a)
	got, err := c.Decrypt("secrets/prod/web.yaml", enc)
	if err != nil {
		t.Fatal(err)
	}
	sameYAML(t, plain, got)

	repo := os.DirFS(repoDir)
	if need, err := c.NeedsRekey(repo, "secrets/prod/web.yaml", enc); err != nil || need {
		t.Errorf("NeedsRekey: got %v, %v; want false", need, err)
	}
	out, changed, err := c.Update(repo, "secrets/prod/web.yaml", enc, plain)
	if err != nil || changed || !bytes.Equal(out, enc) {
		t.Errorf("Update of the CLI's file with the same plaintext: got changed=%v, %v; want it kept", changed, err)
	}

	// A value edited by hand in the CLI's file is caught.
	tampered := bytes.Replace(enc, []byte("letsencrypt"), []byte("evil-ca"), 1)
	if _, err := c.Decrypt("secrets/prod/web.yaml", tampered); err == nil {
		t.Error("tampered CLI file decrypted")
	}
	assertNoPrivateKey(t, repoDir)
}

// The folder certops writes is consumable the way Flux's kustomize-controller
// and KSOPS consume it: the kustomization lists the files, each decrypts with
// sops to a valid kubernetes.io/tls Secret. Neither the files nor the Git
// objects hold a private key in clear text.
func TestKustomizeFolderDecryptsToSecrets(t *testing.T) {
	a := newAgeKey(t)
	repoDir, keyDir := t.TempDir(), t.TempDir()
	writeFile(t, repoDir, ".sops.yaml", []byte(ageRules(a)))
	c := newCodec(t, []ageKey{a})
	names := []struct{ ns, name string }{{"prod", "web"}, {"prod", "api"}, {"dev", "web"}}
	var resources []string
	for _, n := range names {
		file := fmt.Sprintf("secrets/%s/%s.yaml", n.ns, n.name)
		plain := bytes.Replace(tlsSecret(t, n.name), []byte("namespace: prod"), []byte("namespace: "+n.ns), 1)
		enc, err := c.Encrypt(os.DirFS(repoDir), file, plain)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, repoDir, file, enc)
		resources = append(resources, strings.TrimPrefix(file, "secrets/"))
	}
	kust := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
	for _, r := range resources {
		kust += "  - " + r + "\n"
	}
	writeFile(t, repoDir, "secrets/kustomization.yaml", []byte(kust))

	var k struct {
		Resources []string `yaml:"resources"`
	}
	raw, err := os.ReadFile(filepath.Join(repoDir, "secrets", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Resources) != len(names) {
		t.Fatalf("kustomization lists %d resources, want %d", len(k.Resources), len(names))
	}
	keyFile := a.keyFile(t, keyDir)
	for _, r := range k.Resources {
		out := runSops(t, filepath.Join(repoDir, "secrets"), nil, []string{"SOPS_AGE_KEY_FILE=" + keyFile}, "decrypt", r)
		checkTLSSecret(t, r, out)
	}

	// Commit the folder and scan every Git object.
	git := peer.System(t, "git")
	gitRun := func(args ...string) []byte {
		cmd := exec.Command(git, args...)
		cmd.Dir = repoDir
		cmd.Env = peer.GitEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return out
	}
	gitRun("init", "-q", "-b", "main")
	gitRun("add", "-A")
	gitRun("commit", "-q", "-m", "certops: issue web, api")
	objects := gitRun("cat-file", "--batch-all-objects", "--batch")
	if !bytes.Contains(objects, []byte("ENC[AES256_GCM,")) {
		t.Fatal("git objects do not hold the encrypted files: the scan below would prove nothing")
	}
	if bytes.Contains(objects, []byte("PRIVATE KEY")) {
		t.Error("a git object holds a private key in clear text")
	}
	assertNoPrivateKey(t, repoDir)
	assertNoPrivateKey(t, keyDir)
}

func checkTLSSecret(t *testing.T, name string, manifest []byte) {
	t.Helper()
	var s struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Type       string `yaml:"type"`
		Metadata   struct {
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"metadata"`
		StringData map[string]string `yaml:"stringData"`
	}
	if err := yaml.Unmarshal(manifest, &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if s.APIVersion != "v1" || s.Kind != "Secret" || s.Type != "kubernetes.io/tls" {
		t.Errorf("%s: got %s %s %s, want v1 Secret kubernetes.io/tls", name, s.APIVersion, s.Kind, s.Type)
	}
	if want := s.Metadata.Namespace + "/" + s.Metadata.Name + ".yaml"; want != name {
		t.Errorf("%s: holds %s", name, want)
	}
	if _, err := tls.X509KeyPair([]byte(s.StringData["tls.crt"]), []byte(s.StringData["tls.key"])); err != nil {
		t.Errorf("%s: tls.crt and tls.key are not a key pair: %v", name, err)
	}
	blk, _ := pem.Decode([]byte(s.StringData["ca.crt"]))
	if blk == nil {
		t.Fatalf("%s: ca.crt is not PEM", name)
	}
	if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		t.Errorf("%s: ca.crt: %v", name, err)
	}
}

// With an OpenPGP recipient, the sops CLI decrypts what certops wrote with
// gpg and no age key at all: certops encrypted the data key in process from
// the public key alone.
func TestCLIDecryptsPGPRecipientWithGPG(t *testing.T) {
	a := newAgeKey(t)
	p := newPGPKey(t)
	gpg := peer.System(t, "gpg")
	home := t.TempDir()
	gpgEnv := []string{"GNUPGHOME=" + home, "PATH=" + os.Getenv("PATH")}
	t.Cleanup(func() {
		cmd := exec.Command(peer.System(t, "gpgconf"), "--kill", "gpg-agent")
		cmd.Env = gpgEnv
		_ = cmd.Run()
	})
	// The test's own PGP secret key reaches gpg through stdin only.
	var secret bytes.Buffer
	w, err := pgparmor.Encode(&secret, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.entity.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	imp := exec.Command(gpg, "--batch", "--import")
	imp.Env = gpgEnv
	imp.Stdin = &secret
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}

	pk, err := sops.ParsePGPPublicKey(p.public)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := sops.NewTrust([]string{a.recipient}, []sops.PGPKey{pk})
	if err != nil {
		t.Fatal(err)
	}
	c, err := sops.New(sops.Options{Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	repoDir := t.TempDir()
	writeFile(t, repoDir, ".sops.yaml", []byte("creation_rules:\n  - age: "+a.recipient+"\n    pgp: "+p.fp+"\n"))
	plain := tlsSecret(t, "web")
	enc, err := c.Encrypt(os.DirFS(repoDir), "secrets/web.yaml", plain)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, repoDir, "secrets/web.yaml", enc)
	got := runSops(t, repoDir, nil, []string{"GNUPGHOME=" + home}, "decrypt", "secrets/web.yaml")
	sameYAML(t, plain, got)
	assertNoPrivateKey(t, repoDir)
}
