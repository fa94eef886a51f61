package sops_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"go.yaml.in/yaml/v3"

	"certops.dev/certops/sops"
)

func FuzzDecrypt(f *testing.F) {
	ids, err := sops.ReadIdentityFile(filepath.Join("testdata", "fuzz-age-key.txt"))
	if err != nil {
		f.Fatal(err)
	}
	trust, err := sops.NewTrust([]string{fuzzRecipient}, nil)
	if err != nil {
		f.Fatal(err)
	}
	c, err := sops.New(sops.Options{Trust: trust, Identities: ids})
	if err != nil {
		f.Fatal(err)
	}
	if *update {
		writeFuzzSeeds(f, c)
	}
	f.Add([]byte("sops:\n  version: 3.13.3\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		plain, err := c.Decrypt("fuzz.yaml", in)
		if err != nil {
			if plain != nil {
				t.Fatalf("plaintext returned with error %v", err)
			}
			return
		}
		// Whatever verifies is one YAML document the store can read back.
		var doc map[string]any
		if err := yaml.Unmarshal(plain, &doc); err != nil {
			t.Fatalf("verified plaintext does not parse: %v", err)
		}
	})
}

// fuzzRecipient is the public half of testdata/fuzz-age-key.txt.
const fuzzRecipient = "age18tvtdpj9rgthdya7w2t6wylaas8eyw2yk4ss50d673u7n0pn94jsv8lx24"

// writeFuzzSeeds regenerates testdata/fuzz/FuzzDecrypt (go test -run '^$'
// -fuzz=^$ -update): one valid file and edits of it that must fail.
func writeFuzzSeeds(f *testing.F, c *sops.Codec) {
	repo := repoWith(map[string]string{".sops.yaml": "creation_rules:\n  - age: " + fuzzRecipient + "\n"})
	enc, err := c.Encrypt(repo, "secrets/seed.yaml", tlsSecret(f, "seed"))
	if err != nil {
		f.Fatal(err)
	}
	seeds := map[string][]byte{
		"valid":     enc,
		"tampered":  bytes.Replace(enc, []byte("letsencrypt"), []byte("letsdecrypt"), 1),
		"truncated": enc[:len(enc)*2/3],
		"version":   bytes.Replace(enc, []byte("version: 3.13.3"), []byte("version: 9.0.0"), 1),
		"garbage":   []byte("\x00\xff{[: -"),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecrypt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	for name, b := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			f.Fatal(err)
		}
	}
}

// The committed "valid" seed really is valid, so the fuzzer starts from a
// file that passes the MAC check and mutates from there.
func TestFuzzSeedDecrypts(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecrypt", "valid"))
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.TrimSuffix(bytes.TrimPrefix(raw, []byte("go test fuzz v1\n[]byte(")), []byte(")\n"))
	s, err := strconv.Unquote(string(body))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := sops.ReadIdentityFile(filepath.Join("testdata", "fuzz-age-key.txt"))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := sops.NewTrust([]string{fuzzRecipient}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sops.New(sops.Options{Trust: trust, Identities: ids})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt("valid", []byte(s)); err != nil {
		t.Fatal(err)
	}
}
