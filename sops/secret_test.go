package sops_test

import (
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"certops.dev/certops/sops"
)

// manifest is how a Secret was rendered before UpdateSecret: a struct
// through sigs.k8s.io/yaml, then parsed by the sops store.
type manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Type       string            `json:"type"`
	StringData map[string]string `json:"stringData,omitempty"`
}

// TestUpdateSecretIsUpdateOfItsManifest: UpdateSecret writes the document
// the YAML route wrote, so files stay byte-for-byte unchanged across the two
// and either route sees the other's file as up to date.
func TestUpdateSecretIsUpdateOfItsManifest(t *testing.T) {
	k := newAgeKey(t)
	c := newCodec(t, []ageKey{k}, k)
	repo := repoWith(map[string]string{".sops.yaml": ageRules(k)})
	const file = "secrets/prod/web.yaml"
	// Not a key: a PEM-shaped placeholder, kept in testdata/ so that no key
	// material (real or not) sits in the sources.
	placeholder, err := os.ReadFile("testdata/placeholder-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	s := &sops.Secret{
		Name: "web", Namespace: "prod", Type: "kubernetes.io/tls",
		Labels: map[string]string{"b": "2", "a": "true", "app.kubernetes.io/managed-by": "certops"},
		Annotations: map[string]string{
			"z": "", "n": "123", "y": "yes", "t": "2026-12-06T05:00:00Z", "m": "a\nb\n", "c": "x: y", "q": `"quoted"`, "u": "ünï",
		},
		StringData: map[string]string{"tls.key": string(placeholder), "tls.crt": "crt\n", "ca.crt": "ca"},
	}
	var m manifest
	m.APIVersion, m.Kind, m.Type, m.StringData = "v1", "Secret", s.Type, s.StringData
	m.Metadata.Name, m.Metadata.Namespace, m.Metadata.Labels, m.Metadata.Annotations = s.Name, s.Namespace, s.Labels, s.Annotations
	viaYAML, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}

	direct, err := s.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	enc, changed, err := c.UpdateSecret(repo, file, nil, s)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	plain, err := c.Decrypt(file, enc)
	if err != nil {
		t.Fatal(err)
	}
	if string(plain) != string(direct) {
		t.Fatalf("UpdateSecret wrote\n%s\nManifest is\n%s", plain, direct)
	}

	// The file written from the YAML route decrypts to the same document,
	// and each route takes the other's file as it is.
	enc2, changed, err := c.Update(repo, file, nil, viaYAML)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	plain2, err := c.Decrypt(file, enc2)
	if err != nil {
		t.Fatal(err)
	}
	if string(plain2) != string(direct) {
		t.Fatalf("the YAML route wrote\n%s\nUpdateSecret\n%s", plain2, direct)
	}
	if out, changed, err := c.UpdateSecret(repo, file, enc2, s); err != nil || changed || string(out) != string(enc2) {
		t.Fatalf("UpdateSecret of the YAML route's file: changed %v, %v", changed, err)
	}
	if out, changed, err := c.Update(repo, file, enc, viaYAML); err != nil || changed || string(out) != string(enc) {
		t.Fatalf("Update of UpdateSecret's file: changed %v, %v", changed, err)
	}

	// A changed value is a change.
	s.Annotations["n"] = "124"
	if _, changed, err := c.UpdateSecret(repo, file, enc, s); err != nil || !changed {
		t.Fatalf("changed annotation: changed %v, %v", changed, err)
	}
	// The key in clear text is refused, as Update refuses it.
	s.Annotations["leak"], _, _ = strings.Cut(string(placeholder), "\n")
	if _, _, err := c.UpdateSecret(repo, file, nil, s); err == nil {
		t.Fatal("a private key in an annotation was encrypted")
	}
}
