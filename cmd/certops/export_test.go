package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"certops.dev/certops/e2e/peer"
)

// issuedClone runs certops init and one real pass against a real Git
// server, and returns a clone holding the issued Secrets and the age
// identity file that decrypts them.
func issuedClone(t *testing.T) (clone, identity string) {
	t.Helper()
	tmp := t.TempDir()
	identity = filepath.Join(tmp, "age.key")
	work := filepath.Join(tmp, "work")
	if _, errOut, code := run(t, "init", "--identity", identity, work); code != 0 {
		t.Fatal(errOut)
	}
	g := peer.StartGit(t, peer.GitOptions{})
	g.CreateRepo(t, "repo.git")
	g.SeedDir(t, "repo.git", "main", work)
	f := daemonFlags{repo: g.URL("http", "repo.git"), branch: "main", stateDir: filepath.Join(tmp, "state"),
		ageIdentity: identity, interval: time.Hour, logLevel: "error", logFormat: "text"}
	rec, repo, err := f.build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	if rep := rec.Pass(context.Background(), true); rep.Error != "" || rep.Failed() > 0 || rep.Pushed == "" {
		t.Fatalf("pass: error %q, failed %d, pushed %q", rep.Error, rep.Failed(), rep.Pushed)
	}
	return g.Clone(t, "repo.git", "main"), identity
}

func TestExportPKCS12RoundTrip(t *testing.T) {
	openssl := peer.System(t, "openssl")
	clone, id := issuedClone(t)
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(private, "p12.pass")
	if err := os.WriteFile(pass, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(private, "web.p12")
	if _, errOut, code := run(t, "export", "web/web", clone, "--age-identity", id, "--format", "pkcs12",
		"--password-file", pass, "--out", out); code != 0 {
		t.Fatalf("export pkcs12: exit %d: %s", code, errOut)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keystore mode %v, want 0600", fi.Mode().Perm())
	}
	// The chain the keystore must hold: what export --format chain prints.
	chainPEM, errOut, code := run(t, "export", "web/web", clone, "--age-identity", id, "--format", "chain")
	if code != 0 {
		t.Fatalf("export chain: %s", errOut)
	}
	blk, _ := pem.Decode([]byte(chainPEM))
	if blk == nil {
		t.Fatalf("export --format chain printed no PEM:\n%s", chainPEM)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	// Go's decoder: right password opens it, the leaf is web's.
	p12, _ := os.ReadFile(out)
	key, cert, _, err := pkcs12.DecodeChain(p12, "correct horse")
	if err != nil {
		t.Fatalf("decoding the keystore: %v", err)
	}
	if key == nil || !cert.Equal(leaf) {
		t.Errorf("keystore leaf serial %x, want %x (key present: %v)", cert.SerialNumber, leaf.SerialNumber, key != nil)
	}
	if _, _, _, err := pkcs12.DecodeChain(p12, "wrong"); err == nil {
		t.Error("the keystore opened with a wrong password")
	}
	// The real openssl reads it with the password file.
	cmd := exec.Command(openssl, "pkcs12", "-info", "-nokeys", "-in", out, "-passin", "file:"+pass)
	info, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs12: %v\n%s", err, info)
	}
	if !strings.Contains(string(info), string(pem.EncodeToMemory(blk))) {
		t.Errorf("openssl pkcs12 -info does not show web's leaf certificate:\n%s", info)
	}

	// Refusals: no --out, a folder others can read, no password source.
	if _, errOut, code := run(t, "export", "web/web", clone, "--age-identity", id, "--format", "pkcs12", "--password-file", pass); code == 0 || !strings.Contains(errOut, "--out") {
		t.Errorf("pkcs12 without --out: exit %d, %q; want a refusal naming --out", code, errOut)
	}
	open := t.TempDir()
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(t, "export", "web/web", clone, "--age-identity", id, "--format", "pkcs12",
		"--password-file", pass, "--out", filepath.Join(open, "x.p12")); code == 0 || !strings.Contains(errOut, "readable by others") {
		t.Errorf("pkcs12 into a 0755 folder: exit %d, %q; want a refusal", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(open, "x.p12")); err == nil {
		t.Error("a keystore was written into a world-readable folder")
	}
	if _, errOut, code := run(t, "export", "web/web", clone, "--age-identity", id, "--format", "pkcs12",
		"--out", filepath.Join(private, "y.p12")); code == 0 || !strings.Contains(errOut, "--password-file") {
		t.Errorf("pkcs12 with no password source: exit %d, %q; want a refusal", code, errOut)
	}
}
