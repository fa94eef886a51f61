package sops_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"certops.dev/certops/sops"
)

// DecryptData gives what parsing Decrypt's plaintext gives: data decoded
// from base64, stringData as it is and winning over data.
func TestDecryptDataMatchesDecrypt(t *testing.T) {
	a := newAgeKey(t)
	c := newCodec(t, []ageKey{a}, a)
	repo := repoWith(map[string]string{".sops.yaml": ageRules(a)})
	for name, plain := range map[string][]byte{
		"tls": tlsSecret(t, "web"),
		"stringData": []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\n" +
			"data: {a: " + base64.StdEncoding.EncodeToString([]byte("from data")) + ", b: " + base64.StdEncoding.EncodeToString([]byte("old")) + "}\n" +
			"stringData: {b: \"new\", c: \"line one\\nline two\"}\n"),
		"empty": []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\ndata: {}\n"),
	} {
		t.Run(name, func(t *testing.T) {
			enc, err := c.Encrypt(repo, "secrets/n/s.yaml", plain)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.DecryptData("secrets/n/s.yaml", enc)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.Decrypt("secrets/n/s.yaml", enc)
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				Data       map[string]string `yaml:"data"`
				StringData map[string]string `yaml:"stringData"`
			}
			if err := yaml.Unmarshal(out, &m); err != nil {
				t.Fatal(err)
			}
			want := map[string][]byte{}
			for k, v := range m.Data {
				if want[k], err = base64.StdEncoding.DecodeString(v); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range m.StringData {
				want[k] = []byte(v)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("DecryptData differs from Decrypt's plaintext (-decrypt +data):\n%s", diff)
			}
			if name == "stringData" && string(got["b"]) != "new" {
				t.Errorf("b = %q, want stringData's value", got["b"])
			}
		})
	}
}

func TestDecryptDataRefusesTamperingAndBadData(t *testing.T) {
	a := newAgeKey(t)
	c := newCodec(t, []ageKey{a}, a)
	repo := repoWith(map[string]string{".sops.yaml": ageRules(a)})
	enc, err := c.Encrypt(repo, "secrets/n/s.yaml", tlsSecret(t, "web"))
	if err != nil {
		t.Fatal(err)
	}
	// The namespace is clear text, covered by the MAC.
	tampered := bytes.Replace(enc, []byte("namespace: prod"), []byte("namespace: other"), 1)
	if bytes.Equal(tampered, enc) {
		t.Fatal("the fixture has no namespace to tamper with")
	}
	var integrity *sops.IntegrityError
	if _, err := c.DecryptData("secrets/n/s.yaml", tampered); !errors.As(err, &integrity) {
		t.Errorf("tampered file: %v, want an IntegrityError", err)
	}
	notBase64 := []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\ndata: {tls.crt: \"not base64!\"}\n")
	enc, err = c.Encrypt(repo, "secrets/n/s.yaml", notBase64)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DecryptData("secrets/n/s.yaml", enc)
	if !errors.Is(err, sops.ErrMalformed) || !bytes.Contains([]byte(err.Error()), []byte("data.tls.crt is not base64")) {
		t.Errorf("data that is not base64: %v", err)
	}
}
