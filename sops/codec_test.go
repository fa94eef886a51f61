package sops_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"certops.dev/certops/sops"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// redact replaces what changes at every encryption (ciphertexts, the
// recipients' public keys) so the layout of a file can be compared with a
// golden file.
func redact(b []byte, keys ...ageKey) []byte {
	s := regexp.MustCompile(`ENC\[AES256_GCM,data:[^\]]*\]`).ReplaceAllString(string(b), "ENC[...]")
	s = regexp.MustCompile(`(?s)-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----`).
		ReplaceAllString(s, "<age stanza>")
	for i, k := range keys {
		s = strings.ReplaceAll(s, k.recipient, "<recipient "+string(rune('A'+i))+">")
	}
	return []byte(s)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", p, diff)
	}
}

func TestEncryptLayoutAndRoundTrip(t *testing.T) {
	a, b := newAgeKey(t), newAgeKey(t)
	c := newCodec(t, []ageKey{a, b}, b)
	repo := repoWith(map[string]string{".sops.yaml": ageRules(a, b)})
	plain := tlsSecret(t, "web")

	enc, err := c.Encrypt(repo, "secrets/prod/web.yaml", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc, []byte("PRIVATE KEY")) {
		t.Fatal("ciphertext holds the private key in clear text")
	}
	golden(t, "web.enc.golden.yaml", redact(enc, a, b))

	// The clear-text part is plain YAML any tool can read without a key.
	var doc struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Type       string `yaml:"type"`
		Metadata   struct {
			Name        string            `yaml:"name"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		StringData map[string]string `yaml:"stringData"`
		Sops       struct {
			EncryptedRegex string `yaml:"encrypted_regex"`
			Version        string `yaml:"version"`
		} `yaml:"sops"`
	}
	if err := yaml.Unmarshal(enc, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Kind != "Secret" || doc.APIVersion != "v1" || doc.Type != "kubernetes.io/tls" || doc.Metadata.Name != "web" {
		t.Errorf("clear text: got %+v", doc)
	}
	if got := doc.Metadata.Annotations["certops.dev/issuer"]; got != "letsencrypt" {
		t.Errorf("annotation: got %q, want letsencrypt", got)
	}
	for k, v := range doc.StringData {
		if !strings.HasPrefix(v, "ENC[AES256_GCM,") {
			t.Errorf("stringData[%s] is not encrypted: got %.20q", k, v)
		}
	}
	if doc.Sops.EncryptedRegex != sops.SecretEncryptedRegex || doc.Sops.Version != "3.13.3" {
		t.Errorf("sops metadata: got %+v", doc.Sops)
	}

	got, err := c.Decrypt("secrets/prod/web.yaml", enc)
	if err != nil {
		t.Fatal(err)
	}
	var gotDoc, wantDoc map[string]any
	if err := yaml.Unmarshal(got, &gotDoc); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(plain, &wantDoc); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantDoc, gotDoc); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	// Either recipient reads it.
	if _, err := newCodec(t, []ageKey{a}, a).Decrypt("secrets/prod/web.yaml", enc); err != nil {
		t.Errorf("recipient A: %v", err)
	}
}

func TestEncryptRefusesBadPlaintext(t *testing.T) {
	a := newAgeKey(t)
	c := newCodec(t, []ageKey{a}, a)
	repo := repoWith(map[string]string{".sops.yaml": ageRules(a)})
	secret := string(tlsSecret(t, "web"))
	keyPEM := secret[strings.Index(secret, "    -----BEGIN PRIVATE KEY-----"):strings.Index(secret, "  ca.crt:")]
	tests := []struct {
		name  string
		plain string
		want  error
	}{
		{"not yaml", "a: [", sops.ErrMalformed},
		{"two documents", secret + "---\n" + secret, sops.ErrMalformed},
		{"not a secret", strings.Replace(secret, "kind: Secret", "kind: ConfigMap", 1), sops.ErrMalformed},
		{"extra top-level field stays in clear", secret + "spec:\n  x: 1\n", sops.ErrMalformed},
		{"already encrypted", secret + "sops:\n  version: 3.13.3\n", sops.ErrMalformed},
		{"key in an annotation", strings.Replace(secret, "  annotations:\n", "  annotations:\n    leak: |\n"+strings.ReplaceAll(keyPEM, "    ", "      "), 1), sops.ErrClearTextKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Encrypt(repo, "secrets/prod/web.yaml", []byte(tt.plain))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error quotes key material: %v", err)
			}
			if !strings.Contains(err.Error(), "secrets/prod/web.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

func TestUpdateKeepsUnchangedFiles(t *testing.T) {
	a, b := newAgeKey(t), newAgeKey(t)
	c := newCodec(t, []ageKey{a, b}, a)
	repo := repoWith(map[string]string{".sops.yaml": ageRules(a)})
	plain := tlsSecret(t, "web")
	const file = "secrets/prod/web.yaml"

	first, changed, err := c.Update(repo, file, nil, plain)
	if err != nil || !changed {
		t.Fatalf("new file: got changed=%v, %v; want true, nil", changed, err)
	}
	again, changed, err := c.Update(repo, file, first, plain)
	if err != nil {
		t.Fatal(err)
	}
	if changed || !bytes.Equal(again, first) {
		t.Errorf("same plaintext: got changed=%v (bytes equal %v), want unchanged", changed, bytes.Equal(again, first))
	}
	// A plaintext that differs only in formatting is the same document.
	reformatted := bytes.Replace(plain, []byte("type: kubernetes.io/tls"), []byte("type: 'kubernetes.io/tls'"), 1)
	if _, changed, err := c.Update(repo, file, first, reformatted); err != nil || changed {
		t.Errorf("reformatted plaintext: got changed=%v, %v; want false, nil", changed, err)
	}

	other := tlsSecret(t, "web")
	next, changed, err := c.Update(repo, file, first, other)
	if err != nil || !changed || bytes.Equal(next, first) {
		t.Fatalf("new plaintext: got changed=%v, %v; want a new file", changed, err)
	}

	// Same plaintext, new recipients: rewritten.
	repo2 := repoWith(map[string]string{".sops.yaml": ageRules(a, b)})
	rekeyed, changed, err := c.Update(repo2, file, next, other)
	if err != nil || !changed {
		t.Fatalf("new recipients: got changed=%v, %v; want true, nil", changed, err)
	}
	groups, _, err := sops.FileRecipients(rekeyed)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || len(groups[0]) != 2 {
		t.Errorf("recipients after update: got %v, want A and B", groups)
	}

	// A tampered old file is reported, not silently replaced.
	tampered := bytes.Replace(next, []byte("letsencrypt"), []byte("evil-ca"), 1)
	if _, _, err := c.Update(repo, file, tampered, other); !errors.Is(err, sops.ErrIntegrity) {
		t.Errorf("tampered old file: got %v, want ErrIntegrity", err)
	}
}

func TestLibraryVersionMatchesGoMod(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github.com/getsops/sops/v3 v(\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod does not require github.com/getsops/sops/v3")
	}
	a := newAgeKey(t)
	enc, err := newCodec(t, []ageKey{a}).Encrypt(repoWith(map[string]string{".sops.yaml": ageRules(a)}), "secrets/a.yaml", tlsSecret(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "version: " + string(m[1]); !bytes.Contains(enc, []byte(want)) {
		t.Errorf("sops.version in written files: want %q (go.mod); update libraryVersion in codec.go", want)
	}
}

// key_groups split the data key with Shamir's scheme, as the sops CLI does.
func TestKeyGroups(t *testing.T) {
	a, b := newAgeKey(t), newAgeKey(t)
	rules := func(threshold int) string {
		return "creation_rules:\n  - shamir_threshold: " + string(rune('0'+threshold)) +
			"\n    key_groups:\n      - age: [" + a.recipient + "]\n      - age: [" + b.recipient + "]\n"
	}
	plain := tlsSecret(t, "web")
	tests := []struct {
		threshold int
		ids       []ageKey
		want      error
	}{
		{2, []ageKey{a, b}, nil},
		{2, []ageKey{a}, sops.ErrNoIdentity},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("threshold=%d/identities=%d", tt.threshold, len(tt.ids)), func(t *testing.T) {
			c := newCodec(t, []ageKey{a, b}, tt.ids...)
			enc, err := c.Encrypt(repoWith(map[string]string{".sops.yaml": rules(tt.threshold)}), "secrets/web.yaml", plain)
			if err != nil {
				t.Fatal(err)
			}
			groups, threshold, err := sops.FileRecipients(enc)
			if err != nil || len(groups) != 2 || threshold != tt.threshold {
				t.Fatalf("file recipients: got %v, threshold %d, %v", groups, threshold, err)
			}
			_, err = c.Decrypt("secrets/web.yaml", enc)
			if !errors.Is(err, tt.want) {
				t.Errorf("decrypt: got %v, want %v", err, tt.want)
			}
		})
	}
}
