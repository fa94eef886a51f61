package gitsource_test

import (
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"certops.dev/certops/gitsource"
)

func TestRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://user:hunter22@git.example.test/org/repo.git", "https://git.example.test/org/repo.git"},
		{"https://x-access-token:ghp_abc123@git.example.test/r", "https://git.example.test/r"},
		{"https://token@git.example.test/r", "https://git.example.test/r"},
		{"ssh://git@git.example.test:2222/r.git", "ssh://git.example.test:2222/r.git"},
		{"git@git.example.test:org/repo.git", "git@git.example.test:org/repo.git"},
		{"user:hunter22@git.example.test:org/repo.git", "<redacted>@git.example.test:org/repo.git"},
		{"file:///srv/git/r.git", "file:///srv/git/r.git"},
		{"https://user:pw@git.example.test/%zz", "<unparsable url>"},
	}
	for _, tc := range cases {
		if got := gitsource.RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRedactURL: whatever the URL, a password in its user-info never
// survives redaction.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{
		"https://user:hunter22@git.example.test/r", "http://a:b@c/d", "ssh://git@h:22/p",
		"user:pass@host:path", "https://%41:%42@h/", "git@h:p",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := gitsource.RedactURL(raw)
		u, err := url.Parse(raw)
		if err != nil || u.User == nil || !strings.Contains(raw, "://") {
			return
		}
		if _, ok := u.User.Password(); ok && strings.Contains(got, u.User.String()+"@") {
			t.Fatalf("RedactURL(%q) = %q keeps the user-info", raw, got)
		}
	})
}

func TestParseAllowedSigners(t *testing.T) {
	k1, k2, k3 := newSSHKey(t, ""), newSSHKey(t, ""), newSSHKey(t, "")
	data := "# comment\n\n" +
		"alice@example.test " + k1.authorized + " alice\n" +
		"bob@example.test,carol@example.test namespaces=\"git,file\" " + k2.authorized + "\n" +
		"dave@example.test namespaces=\"file\" " + k3.authorized + "\n" + // not for git: skipped
		k3.authorized + "\n" // a bare authorized_keys line
	keys, err := gitsource.ParseAllowedSigners([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, ssh.FingerprintSHA256(k))
	}
	want := []string{ssh.FingerprintSHA256(k1.pub), ssh.FingerprintSHA256(k2.pub), ssh.FingerprintSHA256(k3.pub)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys = %v, want %v", got, want)
	}
	_, err = gitsource.ParseAllowedSigners([]byte("good " + k1.authorized + "\nbad line\nalso bad\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("error = %v, want lines 2 and 3 reported", err)
	}
}

// FuzzParseAllowedSigners: the parser of an outside file never panics and
// every key it returns is a usable public key.
func FuzzParseAllowedSigners(f *testing.F) {
	f.Add([]byte("a@b ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVzdGVzdGVzdGVzdGVzdGVzdGVzdGVzdGVzdGVzdGVz c\n"))
	f.Add([]byte("a@b namespaces=\"git\" ssh-ed25519 AAAA\n# x\n\n"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := gitsource.ParseAllowedSigners(data)
		if err != nil {
			return
		}
		for _, k := range keys {
			if _, err := ssh.ParsePublicKey(k.Marshal()); err != nil {
				t.Fatalf("returned key does not round-trip: %v", err)
			}
		}
	})
}
