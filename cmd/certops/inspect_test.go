package main

import (
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestInspectIssuedCertificate(t *testing.T) {
	clone, id := issuedClone(t)
	secret := filepath.Join(clone, "secrets/web/web-tls.yaml")

	out, errOut, code := run(t, "inspect", secret, "--age-identity", id, "--output", "json")
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, errOut)
	}
	var in Inspection
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if in.KeyMatches == nil || !*in.KeyMatches || !in.ChainValid || len(in.DNSNames) == 0 || in.DNSNames[0] != "a.example.com" ||
		len(in.SHA256) != 95 || len(in.SHA1) != 59 || !strings.HasPrefix(in.PublicKey, "ECDSA") && !strings.HasPrefix(in.PublicKey, "RSA") {
		t.Errorf("inspect web: got %+v; want a matching key, a verified chain, a.example.com first and both fingerprints", in)
	}
	// By name, as text: same serial; never key material.
	text, errOut, code := run(t, "inspect", "web/web", clone, "--age-identity", id)
	if code != 0 {
		t.Fatalf("inspect web/web: exit %d: %s", code, errOut)
	}
	if !strings.Contains(text, in.Serial) || !strings.Contains(text, "matches the certificate") || !strings.Contains(text, "Chain:        verified") {
		t.Errorf("inspect web/web text:\n%s\nwant serial %s, a matching key and a verified chain", text, in.Serial)
	}
	if strings.Contains(text+out, "PRIVATE KEY") {
		t.Error("inspect printed key material")
	}

	// A plain Secret with another certificate's key: the mismatch is
	// reported; without ca.crt the chain check says why it cannot verify.
	get := func(name string) map[string]string {
		plain, errOut, code := run(t, "export", name, clone, "--age-identity", id)
		if code != 0 {
			t.Fatalf("export %s: %s", name, errOut)
		}
		var m struct {
			StringData map[string]string `json:"stringData"`
		}
		if err := yaml.Unmarshal([]byte(plain), &m); err != nil {
			t.Fatal(err)
		}
		return m.StringData
	}
	web, api := get("web/web"), get("api/api")
	mixed, _ := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]string{"name": "x"},
		"stringData": map[string]string{"tls.crt": leafOnly(t, web["tls.crt"]), "tls.key": api["tls.key"]}})
	f := filepath.Join(t.TempDir(), "mixed.yaml")
	if err := os.WriteFile(f, mixed, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = run(t, "inspect", f, "--output", "json")
	if code != 0 {
		t.Fatalf("inspect mixed: exit %d: %s", code, errOut)
	}
	in = Inspection{}
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatal(err)
	}
	if in.KeyMatches == nil || *in.KeyMatches || in.ChainValid || !strings.Contains(in.ChainProblem, "no ca.crt") {
		t.Errorf("mixed Secret: got %+v; want a key mismatch and a chain problem", in)
	}
	// A PEM file: the chain alone, no key.
	pemFile := filepath.Join(t.TempDir(), "tls.crt")
	if err := os.WriteFile(pemFile, []byte(web["tls.crt"]), 0o644); err != nil {
		t.Fatal(err)
	}
	text, errOut, code = run(t, "inspect", pemFile)
	if code != 0 || !strings.Contains(text, "Private key:  not present") || !strings.Contains(text, in.Serial) {
		t.Errorf("inspect PEM: exit %d, %s\n%s", code, errOut, text)
	}
}

func leafOnly(t *testing.T, chain string) string {
	t.Helper()
	b, _ := pem.Decode([]byte(chain))
	if b == nil {
		t.Fatal("tls.crt holds no PEM")
	}
	return string(pem.EncodeToMemory(b))
}
