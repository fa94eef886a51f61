package gitsource_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/gitsource"
)

// TestAuthModes opens and syncs a real loopback server with every kind of
// credential, and checks the failures are typed and hold no secret.
func TestAuthModes(t *testing.T) {
	const (
		user     = "certops"
		password = "s3cret-Pa55word"
		token    = "tok-0123456789abcdef"
	)
	seed := map[string]string{"certs/a.yaml": "name: a\n"}
	client := newSSHKey(t, "")
	encrypted := newSSHKey(t, "key-passphrase")
	basic := startGit(t, peer.GitOptions{
		Username: user, Password: password, BearerToken: token,
		AuthorizedKeys: []ssh.PublicKey{client.pub, encrypted.pub},
	}, seed)
	basic.CreateRepo(t, "empty.git")
	mtls := startGit(t, peer.GitOptions{RequireClientCert: true}, seed)
	certPEM, keyPEM := mtls.ClientCertificate(t)
	other := peer.StartGit(t, peer.GitOptions{}) // for a known_hosts that does not match
	changedKH := []byte(strings.Replace(string(other.KnownHosts), hostPort(other.SSH), hostPort(basic.SSH), 1))

	cases := []struct {
		name     string
		url      string
		branch   string
		auth     map[string][]byte
		wantKind error  // nil: success
		wantText string // in the error
	}{
		{name: "http basic", url: basic.URL("http", "repo.git"),
			auth: map[string][]byte{"username": []byte(user), "password": []byte(password + "\n")}},
		{name: "http wrong password", url: basic.URL("http", "repo.git"),
			auth:     map[string][]byte{"username": []byte(user), "password": []byte("wrong-" + password)},
			wantKind: gitsource.ErrAuth},
		{name: "http no credentials", url: basic.URL("http", "repo.git"), wantKind: gitsource.ErrAuth},
		{name: "http password in url", url: strings.Replace(basic.URL("http", "repo.git"), "://", "://"+user+":"+password+"@", 1)},
		{name: "http wrong password in url", url: strings.Replace(basic.URL("http", "repo.git"), "://", "://"+user+":wrong-"+password+"@", 1),
			wantKind: gitsource.ErrAuth},
		{name: "https token as password with ca.crt", url: basic.URL("https", "repo.git"),
			auth: map[string][]byte{"password": []byte(token), "username": []byte(user), "ca.crt": basic.CAPEM}},
		{name: "https bearer token", url: basic.URL("https", "repo.git"),
			auth: map[string][]byte{"bearerToken": []byte(token), "ca.crt": basic.CAPEM}},
		{name: "https wrong bearer token", url: basic.URL("https", "repo.git"),
			auth:     map[string][]byte{"bearerToken": []byte("bad-" + token), "ca.crt": basic.CAPEM},
			wantKind: gitsource.ErrAuth},
		{name: "https unknown ca", url: basic.URL("https", "repo.git"),
			auth:     map[string][]byte{"username": []byte(user), "password": []byte(password)},
			wantText: "certificate"},
		{name: "https client certificate", url: mtls.URL("https", "repo.git"),
			auth: map[string][]byte{"ca.crt": mtls.CAPEM, "tls.crt": certPEM, "tls.key": keyPEM}},
		{name: "https client certificate missing", url: mtls.URL("https", "repo.git"),
			auth:     map[string][]byte{"ca.crt": mtls.CAPEM},
			wantText: "certificate"},
		{name: "ssh key", url: basic.URL("ssh", "repo.git"),
			auth: map[string][]byte{"identity": client.priv, "known_hosts": basic.KnownHosts}},
		{name: "ssh key with passphrase", url: basic.URL("ssh", "repo.git"),
			auth: map[string][]byte{"identity": encrypted.priv, "password": []byte(encrypted.passphrase), "known_hosts": basic.KnownHosts}},
		{name: "ssh key not authorized", url: basic.URL("ssh", "repo.git"),
			auth:     map[string][]byte{"identity": newSSHKey(t, "").priv, "known_hosts": basic.KnownHosts},
			wantKind: gitsource.ErrAuth},
		{name: "ssh unknown host", url: basic.URL("ssh", "repo.git"),
			auth:     map[string][]byte{"identity": client.priv, "known_hosts": other.KnownHosts},
			wantKind: gitsource.ErrHostKey},
		{name: "ssh changed host key", url: basic.URL("ssh", "repo.git"),
			auth:     map[string][]byte{"identity": client.priv, "known_hosts": changedKH},
			wantKind: gitsource.ErrHostKey},
		{name: "file", url: basic.URL("file", "repo.git")},
		{name: "missing branch", url: basic.URL("http", "repo.git"), branch: "nope",
			auth:     map[string][]byte{"username": []byte(user), "password": []byte(password)},
			wantKind: gitsource.ErrNotFound},
		{name: "missing repository", url: basic.URL("http", "nope.git"),
			auth:     map[string][]byte{"username": []byte(user), "password": []byte(password)},
			wantKind: gitsource.ErrNotFound},
		{name: "empty remote", url: basic.URL("http", "empty.git"),
			auth:     map[string][]byte{"username": []byte(user), "password": []byte(password)},
			wantKind: gitsource.ErrNotFound},
		{name: "empty remote over ssh", url: basic.URL("ssh", "empty.git"),
			auth:     map[string][]byte{"identity": client.priv, "known_hosts": basic.KnownHosts},
			wantKind: gitsource.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs lockedBuffer
			r := open(t, gitsource.Options{URL: tc.url, Branch: tc.branch, AuthDir: writeAuthDir(t, tc.auth),
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			defer func() {
				for _, secret := range []string{password, token, encrypted.passphrase} {
					if strings.Contains(logs.String(), secret) {
						t.Errorf("log holds a secret:\n%s", logs.String())
					}
				}
			}()
			if strings.Contains(r.URL(), password) {
				t.Errorf("URL() = %q holds the password", r.URL())
			}
			head, err := r.Sync(context.Background())
			_, _, perr := r.Poll(context.Background())
			for _, e := range []error{err, perr} {
				if e == nil {
					continue
				}
				for _, secret := range []string{password, token, encrypted.passphrase} {
					if strings.Contains(e.Error(), secret) {
						t.Errorf("error %q holds a secret", e)
					}
				}
				if !strings.HasPrefix(e.Error(), "gitsource: ") {
					t.Errorf("error %q lacks the package prefix", e)
				}
			}
			if tc.wantKind == nil && tc.wantText == "" {
				if err != nil {
					t.Fatalf("Sync: %v", err)
				}
				if perr != nil {
					t.Fatalf("Poll: %v", perr)
				}
				fsys, err := r.Files(head)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := readFile(t, fsys, "certs/a.yaml"), "name: a\n"; got != want {
					t.Errorf("certs/a.yaml = %q, want %q", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Sync succeeded, want an error")
			}
			t.Logf("Sync error: %v", err)
			if tc.wantKind != nil && !errors.Is(err, tc.wantKind) {
				t.Errorf("Sync error %q is not %v", err, tc.wantKind)
			}
			if tc.wantKind != nil && !errors.Is(perr, tc.wantKind) {
				t.Errorf("Poll error %q is not %v", perr, tc.wantKind)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Sync error %q does not mention %q", err, tc.wantText)
			}
		})
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func hostPort(sshURL string) string {
	i := strings.LastIndex(sshURL, "@")
	host, port, _ := strings.Cut(sshURL[i+1:], ":")
	return fmt.Sprintf("[%s]:%s", host, port)
}

func TestOpenRefusesBadSSHAuth(t *testing.T) {
	key := newSSHKey(t, "pass-phrase-1")
	cases := []struct {
		name string
		auth map[string][]byte
		want string
	}{
		{"no known_hosts", map[string][]byte{"identity": key.priv, "password": []byte(key.passphrase)}, "known_hosts"},
		{"no identity", map[string][]byte{"known_hosts": []byte("x ssh-ed25519 AAAA")}, "identity"},
		{"no passphrase", map[string][]byte{"identity": key.priv, "known_hosts": []byte("h " + key.authorized)}, "encrypted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gitsource.Open(context.Background(), gitsource.Options{
				URL: "ssh://git@127.0.0.1:1/repo.git", CacheDir: t.TempDir(), AuthDir: writeAuthDir(t, tc.auth),
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open error = %v, want one mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), key.passphrase) {
				t.Errorf("error %q holds the passphrase", err)
			}
		})
	}
}

func TestLoadAuth(t *testing.T) {
	dir := writeAuthDir(t, map[string][]byte{
		"username":    []byte("bot\n"),
		"password":    []byte("pw\r\n"),
		"bearerToken": []byte("tok"),
		"identity":    []byte("KEY\n"),
		"known_hosts": []byte("KH\n"),
		"ca.crt":      []byte("CA"),
		"tls.crt":     []byte("CRT"),
		"tls.key":     []byte("TLSKEY"),
		"unrelated":   []byte("x"),
	})
	got, err := gitsource.LoadAuth(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := &gitsource.Auth{
		Username: "bot", Password: "pw", BearerToken: "tok",
		Identity: []byte("KEY\n"), KnownHosts: []byte("KH\n"),
		CA: []byte("CA"), CertPEM: []byte("CRT"), KeyPEM: []byte("TLSKEY"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LoadAuth (-want +got):\n%s", diff)
	}
	if _, err := gitsource.LoadAuth(dir + "/missing"); err == nil {
		t.Error("LoadAuth of a missing directory succeeded")
	}
	empty, err := gitsource.LoadAuth("")
	if err != nil || !cmp.Equal(empty, &gitsource.Auth{}) {
		t.Errorf("LoadAuth(\"\") = %+v, %v; want empty credentials", empty, err)
	}
}
