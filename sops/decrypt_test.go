package sops_test

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"certops.dev/certops/sops"
)

// replaceOnce edits an encrypted file the way a person with a text editor
// would; it fails the test when the edit does not apply.
func replaceOnce(t *testing.T, in []byte, re string, repl string) []byte {
	t.Helper()
	rx := regexp.MustCompile(re)
	loc := rx.FindIndex(in)
	if loc == nil {
		t.Fatalf("edit %q does not apply", re)
	}
	out := append([]byte{}, in[:loc[0]]...)
	out = append(out, rx.ReplaceAll(in[loc[0]:loc[1]], []byte(repl))...)
	return append(out, in[loc[1]:]...)
}

func TestDecryptRejectsBadInput(t *testing.T) {
	a, other := newAgeKey(t), newAgeKey(t)
	c := newCodec(t, []ageKey{a, other}, a)
	repo := repoWith(map[string]string{".sops.yaml": ageRules(a)})
	const file = "secrets/prod/web.yaml"
	enc, err := c.Encrypt(repo, file, tlsSecret(t, "web"))
	if err != nil {
		t.Fatal(err)
	}
	toOther, err := c.Encrypt(repoWith(map[string]string{".sops.yaml": ageRules(other)}), file, tlsSecret(t, "web"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		in   func(t *testing.T) []byte
		want error
	}{
		{"tampered ciphertext", func(t *testing.T) []byte {
			// Flip one base64 character of the encrypted key.
			return replaceOnce(t, enc, `(tls\.key: ENC\[AES256_GCM,data:)(.)`, "${1}A${2}")
		}, sops.ErrIntegrity},
		{"changed clear-text annotation", func(t *testing.T) []byte {
			return replaceOnce(t, enc, `not-after: "2027-02-25T12:00:00Z"`, `not-after: "2099-02-25T12:00:00Z"`)
		}, sops.ErrIntegrity},
		{"changed clear-text name", func(t *testing.T) []byte {
			return replaceOnce(t, enc, `name: web`, `name: api`)
		}, sops.ErrIntegrity},
		{"moved encrypted value", func(t *testing.T) []byte {
			b := replaceOnce(t, enc, `tls\.crt:`, "tmp.crt:")
			b = replaceOnce(t, b, `ca\.crt:`, "tls.crt:")
			return replaceOnce(t, b, `tmp\.crt:`, "ca.crt:")
		}, sops.ErrIntegrity},
		{"added clear-text key", func(t *testing.T) []byte {
			return replaceOnce(t, enc, `  annotations:\n`, "  annotations:\n    extra: injected\n")
		}, sops.ErrIntegrity},
		{"added payload key", func(t *testing.T) []byte {
			return replaceOnce(t, enc, `stringData:\n`, "stringData:\n  extra: injected\n")
		}, sops.ErrIntegrity},
		{"removed clear-text key", func(t *testing.T) []byte {
			return replaceOnce(t, enc, `  labels:\n    app.kubernetes.io/managed-by: certops\n`, "")
		}, sops.ErrIntegrity},
		{"changed lastmodified", func(t *testing.T) []byte {
			return replaceOnce(t, enc, `lastmodified: "2026-11-27T12:00:00Z"`, `lastmodified: "2026-11-28T12:00:00Z"`)
		}, sops.ErrIntegrity},
		{"changed mac", func(t *testing.T) []byte {
			return replaceOnce(t, enc, `(mac: ENC\[AES256_GCM,data:)(.)`, "${1}A${2}")
		}, sops.ErrIntegrity},
		{"truncated to half", func(t *testing.T) []byte { return enc[:len(enc)/2] }, sops.ErrNotEncrypted},
		{"truncated inside the sops block", func(t *testing.T) []byte {
			i := bytes.Index(enc, []byte("  lastmodified:"))
			return enc[:i]
		}, sops.ErrMalformed},
		{"last line cut", func(t *testing.T) []byte {
			return enc[:bytes.LastIndex(bytes.TrimRight(enc, "\n"), []byte("\n"))+1]
		}, sops.ErrUnsupportedVersion},
		{"encrypted to other recipients", func(t *testing.T) []byte { return toOther }, sops.ErrNoIdentity},
		{"unknown major version", func(t *testing.T) []byte {
			return replaceOnce(t, enc, `version: 3\.13\.3`, "version: 4.0.0")
		}, sops.ErrUnsupportedVersion},
		{"garbage version", func(t *testing.T) []byte {
			return replaceOnce(t, enc, `version: 3\.13\.3`, "version: banana")
		}, sops.ErrUnsupportedVersion},
		{"plain manifest", func(t *testing.T) []byte {
			return []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: web\n")
		}, sops.ErrNotEncrypted},
		{"empty", func(t *testing.T) []byte { return nil }, sops.ErrNotEncrypted},
		{"not yaml", func(t *testing.T) []byte { return []byte("{{{") }, sops.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Decrypt(file, tt.in(t))
			t.Log(err)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("got %d bytes of plaintext with the error", len(got))
			}
			var fe *sops.FileError
			if !errors.As(err, &fe) || fe.Path != file || !strings.Contains(err.Error(), file) {
				t.Errorf("error does not name the file: %v", err)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error quotes key material")
			}
		})
	}

	if _, err := newCodec(t, []ageKey{a}).Decrypt(file, enc); !errors.Is(err, sops.ErrNoIdentity) {
		t.Errorf("codec without identities: got %v, want ErrNoIdentity", err)
	}
}

func TestRekey(t *testing.T) {
	a, b, stranger := newAgeKey(t), newAgeKey(t), newAgeKey(t)
	c := newCodec(t, []ageKey{a, b}, a)
	before := repoWith(map[string]string{".sops.yaml": ageRules(a)})
	files := map[string][]byte{}
	for _, n := range []string{"secrets/prod/web.yaml", "secrets/prod/api.yaml", "secrets/dev/web.yaml"} {
		enc, err := c.Encrypt(before, n, tlsSecret(t, "web"))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = enc
	}

	// Nothing to do while the rules are unchanged.
	if out, err := c.Rekey(t.Context(), before, files); err != nil || len(out) != 0 {
		t.Fatalf("unchanged rules: got %d files, %v; want none", len(out), err)
	}

	after := repoWith(map[string]string{".sops.yaml": ageRules(a, b)})
	for n, enc := range files {
		need, err := c.NeedsRekey(after, n, enc)
		if err != nil || !need {
			t.Errorf("NeedsRekey(%s): got %v, %v; want true", n, need, err)
		}
	}
	out, err := c.Rekey(t.Context(), after, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(files) {
		t.Fatalf("rekeyed %d files, want %d", len(out), len(files))
	}
	onlyB := newCodec(t, []ageKey{b}, b)
	for n, enc := range out {
		want, err := c.Decrypt(n, files[n])
		if err != nil {
			t.Fatal(err)
		}
		got, err := onlyB.Decrypt(n, enc)
		if err != nil {
			t.Errorf("new recipient cannot read %s: %v", n, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: plaintext changed by rekey", n)
		}
	}
	if again, err := c.Rekey(t.Context(), after, out); err != nil || len(again) != 0 {
		t.Errorf("second rekey: got %d files, %v; want none", len(again), err)
	}

	// Removing a recipient re-keys too, and B can no longer read new files.
	onlyBRules := repoWith(map[string]string{".sops.yaml": ageRules(b)})
	removed, err := c.Rekey(t.Context(), onlyBRules, out)
	if err != nil || len(removed) != len(out) {
		t.Fatalf("remove recipient: got %d files, %v", len(removed), err)
	}
	if _, err := c.Decrypt("secrets/prod/web.yaml", removed["secrets/prod/web.yaml"]); !errors.Is(err, sops.ErrNoIdentity) {
		t.Errorf("removed recipient still reads the file: %v", err)
	}

	// All or nothing: one tampered file, nothing is re-keyed.
	bad := map[string][]byte{}
	for n, enc := range files {
		bad[n] = enc
	}
	bad["secrets/prod/api.yaml"] = bytes.Replace(files["secrets/prod/api.yaml"], []byte("letsencrypt"), []byte("evil"), 1)
	got, err := c.Rekey(t.Context(), after, bad)
	if !errors.Is(err, sops.ErrIntegrity) || got != nil || !strings.Contains(err.Error(), "secrets/prod/api.yaml") {
		t.Errorf("tampered file: got %d files, %v; want none and ErrIntegrity naming the file", len(got), err)
	}

	// Widened set: refused, nothing re-keyed.
	widened := repoWith(map[string]string{".sops.yaml": ageRules(a, stranger)})
	if got, err := c.Rekey(t.Context(), widened, files); !errors.Is(err, sops.ErrUntrustedRecipient) || got != nil {
		t.Errorf("widened: got %d files, %v; want none and ErrUntrustedRecipient", len(got), err)
	}
}
