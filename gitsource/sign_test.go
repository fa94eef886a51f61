package gitsource_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/gitsource"
)

// cliSigner signs commits with the real git CLI and verifies them with it.
type cliSigner struct {
	name    string
	config  []string // -c options for signing and verifying
	env     []string
	wantLog string // in `git log --show-signature` for a good signature
}

// sshCLI configures git for SSH signing with key and for verification
// against the allowed signers.
func sshCLI(t *testing.T, key sshKey, allowed ...sshKey) cliSigner {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key") // test-only key, removed with dir
	if err := os.WriteFile(keyFile, key.priv, 0o600); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, k := range allowed {
		lines = append(lines, "certops@example.test "+k.authorized)
	}
	signers := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(signers, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cliSigner{
		name: "ssh",
		config: []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + keyFile,
			"-c", "gpg.ssh.allowedSignersFile=" + signers},
		wantLog: `Good "git" signature`,
	}
}

// pgpCLI gives git a GNUPGHOME holding key's secret key (unencrypted, test
// only) and the public keys of allowed.
func pgpCLI(t *testing.T, key *pgpKey, allowed ...pgpKey) cliSigner {
	t.Helper()
	home, err := os.MkdirTemp("", "gnupg") // short path: gpg-agent's socket name is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		os.RemoveAll(home)
	})
	gpg := peer.System(t, "gpg")
	run := func(stdin []byte, args ...string) {
		t.Helper()
		cmd := exec.Command(gpg, append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback"}, args...)...)
		cmd.Stdin = strings.NewReader(string(stdin))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
	}
	config := []string{"-c", "gpg.program=" + gpg}
	if key != nil {
		run(key.priv, "--passphrase", key.passphrase, "--import")
		// git runs gpg without a terminal: hand it the passphrase.
		wrapper := filepath.Join(home, "gpg-sign")
		script := fmt.Sprintf("#!/bin/sh\nexec %s --batch --pinentry-mode loopback --passphrase '%s' \"$@\"\n", gpg, key.passphrase)
		if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
			t.Fatal(err)
		}
		config = []string{"-c", "gpg.program=" + wrapper, "-c", "user.signingkey=" + key.email}
	}
	for _, k := range allowed {
		run(k.pub, "--import")
	}
	return cliSigner{name: "openpgp", config: config, env: []string{"GNUPGHOME=" + home}, wantLog: "Good signature from"}
}

func (c cliSigner) git(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(peer.System(t, "git"), append(append([]string{}, c.config...), args...)...)
	cmd.Dir = dir
	cmd.Env = append(peer.GitEnv(), c.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// humanCommit commits and pushes one file from a clone, signed when sign
// is true.
func humanCommit(t *testing.T, g *peer.Git, c cliSigner, clone, file string, sign bool) string {
	t.Helper()
	g.Run(t, clone, "pull", "--quiet", "--rebase", "origin", "main")
	if err := os.WriteFile(filepath.Join(clone, file), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	g.Run(t, clone, "add", "--all")
	args := []string{"commit", "--quiet", "-m", "human " + file}
	if sign {
		args = append(args, "-S")
	}
	if out, err := c.git(t, clone, args...); err != nil {
		t.Fatalf("signed commit: %v\n%s", err, out)
	}
	g.Run(t, clone, "push", "--quiet", "origin", "HEAD:main")
	return g.Run(t, clone, "rev-parse", "HEAD")
}

// TestSignedCommitsVerifyWithGitCLI: certops' OpenPGP and SSH signed
// commits are accepted by `git verify-commit` and `git log
// --show-signature`.
func TestSignedCommitsVerifyWithGitCLI(t *testing.T) {
	pgp := newPGPKey(t, "certops", "certops@example.test", "pgp-passphrase")
	sshk := newSSHKey(t, "ssh-passphrase")
	sshSigner, err := gitsource.NewSSHSigner(sshk.priv, sshk.passphrase)
	if err != nil {
		t.Fatal(err)
	}
	pgpSigner, err := gitsource.NewOpenPGPSigner(pgp.priv, pgp.passphrase)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		signer gitsource.Signer
		cli    func(t *testing.T) cliSigner
	}{
		{"openpgp", pgpSigner, func(t *testing.T) cliSigner { return pgpCLI(t, nil, pgp) }},
		{"ssh", sshSigner, func(t *testing.T) cliSigner { return sshCLI(t, newSSHKey(t, ""), sshk) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := startGit(t, peer.GitOptions{}, map[string]string{"a": "1"})
			r := open(t, gitsource.Options{URL: g.URL("http", "repo.git"), Signer: tc.signer})
			if _, err := r.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if _, _, err := r.Commit(ctx, gitsource.Change{Files: map[string][]byte{"b": []byte("2")}, Message: gitsource.Message{Subject: "signed"}}); err != nil {
				t.Fatal(err)
			}
			if err := r.Push(ctx); err != nil {
				t.Fatal(err)
			}
			cli := tc.cli(t)
			clone := g.Clone(t, "repo.git", "main")
			if out, err := cli.git(t, clone, "verify-commit", "HEAD"); err != nil {
				t.Fatalf("git verify-commit: %v\n%s", err, out)
			}
			out, err := cli.git(t, clone, "log", "-1", "--show-signature")
			if err != nil || !strings.Contains(out, cli.wantLog) {
				t.Fatalf("git log --show-signature (%v):\n%s\nwant %q", err, out, cli.wantLog)
			}
			// The parent (the unsigned seed) must not verify: the check can fail.
			if out, err := cli.git(t, clone, "verify-commit", "HEAD^"); err == nil {
				t.Fatalf("git verify-commit of an unsigned commit passed:\n%s", out)
			}
		})
	}
}

// TestVerification: with a Verifier, tips that are unsigned or signed by an
// untrusted key are refused and the last verified commit is kept; trusted
// signatures of both kinds, and certops' own commits, pass.
func TestVerification(t *testing.T) {
	botPGP := newPGPKey(t, "certops", "certops@example.test", "bot-pass")
	humanPGP := newPGPKey(t, "human", "human@example.test", "human-pass")
	strangerPGP := newPGPKey(t, "stranger", "stranger@example.test", "stranger-pass")
	botSSH, humanSSH, strangerSSH := newSSHKey(t, ""), newSSHKey(t, ""), newSSHKey(t, "")

	type setup struct {
		signer          gitsource.Signer
		verifier        *gitsource.Verifier
		human, stranger cliSigner
	}
	cases := []struct {
		name  string
		setup func(t *testing.T) setup
	}{
		{"openpgp", func(t *testing.T) setup {
			s, err := gitsource.NewOpenPGPSigner(botPGP.priv, botPGP.passphrase)
			if err != nil {
				t.Fatal(err)
			}
			v, err := gitsource.NewVerifier([][]byte{botPGP.pub, humanPGP.pub}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return setup{s, v, pgpCLI(t, &humanPGP), pgpCLI(t, &strangerPGP)}
		}},
		{"ssh", func(t *testing.T) setup {
			s, err := gitsource.NewSSHSigner(botSSH.priv, "")
			if err != nil {
				t.Fatal(err)
			}
			allowed := fmt.Sprintf("# test-only keys\nbot@example.test namespaces=\"git\" %s\nhuman@example.test %s\n", botSSH.authorized, humanSSH.authorized)
			v, err := gitsource.NewVerifier(nil, []byte(allowed))
			if err != nil {
				t.Fatal(err)
			}
			return setup{s, v, sshCLI(t, humanSSH), sshCLI(t, strangerSSH)}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.setup(t)
			g := startGit(t, peer.GitOptions{}, nil)
			g.SeedFiles(t, "repo.git", "main", map[string]string{"seed": "x"})
			clone := g.Clone(t, "repo.git", "main")
			trusted := humanCommit(t, g, s.human, clone, "trusted1", true)

			r := open(t, gitsource.Options{URL: g.URL("http", "repo.git"), Signer: s.signer, Verifier: s.verifier})
			head, err := r.Sync(ctx)
			if err != nil || head != trusted {
				t.Fatalf("Sync of a trusted tip = %s, %v; want %s", head, err, trusted)
			}

			for _, bad := range []struct {
				name string
				push func() string
				want string
			}{
				{"unsigned", func() string { return humanCommit(t, g, s.human, clone, "unsigned", false) }, "not signed"},
				{"untrusted", func() string { return humanCommit(t, g, s.stranger, clone, "untrusted", true) }, "trusted key"},
			} {
				before, _ := r.Head()
				tip := bad.push()
				_, err := r.Sync(ctx)
				if !errors.Is(err, gitsource.ErrVerification) {
					t.Fatalf("%s tip: Sync = %v, want ErrVerification", bad.name, err)
				}
				if !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), tip) {
					t.Errorf("%s tip: error %q lacks %q or the commit", bad.name, err, bad.want)
				}
				if got, _ := r.Head(); got != before {
					t.Errorf("%s tip: Head = %s, want %s (the last verified commit and pending work)", bad.name, got, before)
				}
				// Commits still build on the last verified commit, and a
				// push that would land on the untrusted tip is refused.
				if _, _, err := r.Commit(ctx, gitsource.Change{Files: map[string][]byte{"certs/" + bad.name: []byte("x")}, Message: gitsource.Message{Subject: "bot " + bad.name}}); err != nil {
					t.Fatal(err)
				}
				if err := r.Push(ctx); !errors.Is(err, gitsource.ErrVerification) {
					t.Fatalf("%s tip: Push = %v, want ErrVerification", bad.name, err)
				}
				if got := g.Head(t, "repo.git", "main"); got != tip {
					t.Fatalf("%s tip: remote moved to %s", bad.name, got)
				}
			}

			// A trusted commit on top is accepted again, and certops'
			// pending commits land on it.
			trusted2 := humanCommit(t, g, s.human, clone, "trusted2", true)
			if _, err := r.Sync(ctx); err != nil {
				t.Fatalf("Sync of a trusted tip after refusals: %v", err)
			}
			if err := r.Push(ctx); err != nil {
				t.Fatal(err)
			}
			// certops' own signed commit is now the tip and verifies.
			own := g.Head(t, "repo.git", "main")
			if own == trusted2 {
				t.Fatal("push did not move the remote")
			}
			r2 := open(t, gitsource.Options{URL: g.URL("http", "repo.git"), Verifier: s.verifier})
			if head, err := r2.Sync(ctx); err != nil || head != own {
				t.Fatalf("fresh Sync of certops' own commit = %s, %v; want %s", head, err, own)
			}
		})
	}
}

func TestOpenRefusesUntrustedSigner(t *testing.T) {
	bot, other := newSSHKey(t, ""), newSSHKey(t, "")
	s, err := gitsource.NewSSHSigner(bot.priv, "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := gitsource.NewVerifier(nil, []byte("x "+other.authorized))
	if err != nil {
		t.Fatal(err)
	}
	_, err = gitsource.Open(ctx, gitsource.Options{URL: "file:///x", CacheDir: t.TempDir(), Signer: s, Verifier: v})
	if !errors.Is(err, gitsource.ErrVerification) {
		t.Fatalf("Open with a signer outside the trusted set = %v, want ErrVerification", err)
	}
}

func TestSignerKeyErrors(t *testing.T) {
	pgp := newPGPKey(t, "k", "k@example.test", "right")
	sshk := newSSHKey(t, "right")
	cases := []struct {
		name string
		err  func() error
		want string
	}{
		{"pgp wrong passphrase", func() error { _, err := gitsource.NewOpenPGPSigner(pgp.priv, "wrong"); return err }, "wrong passphrase"},
		{"pgp no passphrase", func() error { _, err := gitsource.NewOpenPGPSigner(pgp.priv, ""); return err }, "no passphrase"},
		{"pgp public only", func() error { _, err := gitsource.NewOpenPGPSigner(pgp.pub, ""); return err }, "no private key"},
		{"ssh wrong passphrase", func() error { _, err := gitsource.NewSSHSigner(sshk.priv, "wrong"); return err }, "cannot parse"},
		{"ssh no passphrase", func() error { _, err := gitsource.NewSSHSigner(sshk.priv, ""); return err }, "encrypted"},
		{"no keys", func() error { _, err := gitsource.NewVerifier(nil, nil); return err }, "at least one"},
		{"bad allowed signers", func() error { _, err := gitsource.NewVerifier(nil, []byte("a b c\n")); return err }, "line 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "right") {
				t.Errorf("error %q holds the passphrase", err)
			}
		})
	}
}
