package gitsource_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/crypto/ssh"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/gitsource"
)

// sshKey is an SSH key pair generated for one test (test-only material).
type sshKey struct {
	priv       []byte // OpenSSH PEM, encrypted when passphrase != ""
	passphrase string
	pub        ssh.PublicKey
	authorized string // "ssh-ed25519 AAAA..."
}

func newSSHKey(t testing.TB, passphrase string) sshKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase != "" {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(k, "test", []byte(passphrase))
	} else {
		block, err = ssh.MarshalPrivateKey(k, "test")
	}
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return sshKey{
		priv:       pem.EncodeToMemory(block),
		passphrase: passphrase,
		pub:        pub,
		authorized: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
	}
}

// pgpKey is an OpenPGP key pair generated for one test (test-only material).
type pgpKey struct {
	priv       []byte // armored, encrypted with passphrase
	passphrase string
	pub        []byte // armored
	email      string
}

func newPGPKey(t testing.TB, name, email, passphrase string) pgpKey {
	t.Helper()
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	w, err := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := e.EncryptPrivateKeys([]byte(passphrase), cfg); err != nil {
		t.Fatal(err)
	}
	var priv bytes.Buffer
	w, err = armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	// SerializePrivateWithoutSigning keeps the (now encrypted) key packets
	// as they are.
	if err := e.SerializePrivateWithoutSigning(w, cfg); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return pgpKey{priv: priv.Bytes(), passphrase: passphrase, pub: pub.Bytes(), email: email}
}

// testLogger writes the package's log lines into the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// open opens a Repo with test defaults (short push backoff).
func open(t testing.TB, o gitsource.Options) *gitsource.Repo {
	t.Helper()
	if o.CacheDir == "" {
		o.CacheDir = t.TempDir()
	}
	if o.Backoff == 0 {
		o.Backoff = 5 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	r, err := gitsource.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func readFile(t testing.TB, fsys fs.FS, name string) string {
	t.Helper()
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

// writeAuthDir lays out credentials like a mounted Flux Git auth Secret.
func writeAuthDir(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startGit starts a git server whose repo.git holds seed on branch main.
func startGit(t testing.TB, opts peer.GitOptions, seed map[string]string) *peer.Git {
	t.Helper()
	g := peer.StartGit(t, opts)
	if seed != nil {
		g.SeedFiles(t, "repo.git", "main", seed)
	}
	return g
}

// pushedTo checks that repo.git's main is at head and that its objects
// pass git fsck.
func pushedTo(t testing.TB, g *peer.Git, head string) {
	t.Helper()
	if got := g.Head(t, "repo.git", "main"); got != head {
		t.Fatalf("remote main = %s, want %s", got, head)
	}
	g.Run(t, g.Dir("repo.git"), "fsck", "--strict", "--no-dangling")
}
