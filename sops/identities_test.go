package sops_test

import (
	"path/filepath"
	"strings"
	"testing"

	"certops.dev/certops/sops"
)

func TestIdentitiesFromEnv(t *testing.T) {
	a, b := newAgeKey(t), newAgeKey(t)
	dir := t.TempDir()
	fileB := b.keyFile(t, dir)
	tests := []struct {
		name    string
		env     map[string]string
		want    int
		wantErr string
	}{
		{"SOPS_AGE_KEY", map[string]string{"SOPS_AGE_KEY": a.id.String()}, 1, ""},
		{"SOPS_AGE_KEY with comments and two keys", map[string]string{"SOPS_AGE_KEY": "# created: now\n" + a.id.String() + "\n\n" + b.id.String()}, 2, ""},
		{"SOPS_AGE_KEY_FILE", map[string]string{"SOPS_AGE_KEY_FILE": fileB}, 1, ""},
		{"both", map[string]string{"SOPS_AGE_KEY": a.id.String(), "SOPS_AGE_KEY_FILE": fileB}, 2, ""},
		{"neither", map[string]string{}, 0, "set SOPS_AGE_KEY or SOPS_AGE_KEY_FILE"},
		{"missing file", map[string]string{"SOPS_AGE_KEY_FILE": filepath.Join(dir, "nope")}, 0, "read age key file"},
		{"garbage", map[string]string{"SOPS_AGE_KEY": "AGE-SECRET-KEY-1NOTAKEY"}, 0, "SOPS_AGE_KEY line 1: invalid age identity"},
		{"only comments", map[string]string{"SOPS_AGE_KEY": "# nothing\n"}, 0, "holds no age identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := sops.IdentitiesFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
					t.Errorf("error quotes the identity: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != tt.want {
				t.Errorf("got %d identities, want %d", len(ids), tt.want)
			}
		})
	}
}

// The identities read from the environment decrypt what the codec wrote.
func TestIdentitiesFromEnvDecrypt(t *testing.T) {
	a := newAgeKey(t)
	ids, err := sops.IdentitiesFromEnv(func(k string) string {
		if k == sops.EnvAgeKeyFile {
			return a.keyFile(t, t.TempDir())
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	trust, err := sops.NewTrust([]string{a.recipient}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sops.New(sops.Options{Trust: trust, Identities: ids})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt(repoWith(map[string]string{".sops.yaml": ageRules(a)}), "secrets/a.yaml", tlsSecret(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt("secrets/a.yaml", enc); err != nil {
		t.Fatal(err)
	}
}

// Encrypt and Decrypt never read the environment: a key in SOPS_AGE_KEY
// that the codec was not given does not decrypt.
func TestDecryptIgnoresEnvironment(t *testing.T) {
	a := newAgeKey(t)
	t.Setenv("SOPS_AGE_KEY", a.id.String())
	t.Setenv("SOPS_AGE_KEY_FILE", a.keyFile(t, t.TempDir()))
	c := newCodec(t, []ageKey{a}) // no identities
	enc, err := c.Encrypt(repoWith(map[string]string{".sops.yaml": ageRules(a)}), "secrets/a.yaml", tlsSecret(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt("secrets/a.yaml", enc); err == nil {
		t.Fatal("decrypted with a key from the environment the codec was not given")
	}
}
