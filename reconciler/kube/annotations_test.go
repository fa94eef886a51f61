package kube

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSecretAnnotations(t *testing.T) {
	_, leaf := testKeypair(t)
	got := SecretAnnotations("web", leaf, IssuerRef{Name: "internal-ca", Kind: "Issuer", Group: "certops.dev"}, "sha256:abc")
	want := map[string]string{
		"cert-manager.io/certificate-name":      "web",
		"cert-manager.io/issuer-name":           "internal-ca",
		"cert-manager.io/issuer-kind":           "Issuer",
		"cert-manager.io/issuer-group":          "certops.dev",
		"cert-manager.io/common-name":           "web.example.test",
		"cert-manager.io/alt-names":             "web.example.test,www.example.test",
		"cert-manager.io/ip-sans":               "10.0.0.1",
		"cert-manager.io/uri-sans":              "spiffe://example.test/web",
		"cert-manager.io/subject-organizations": "Test,Example", // as x509 parses the RDNs back
		"certops.dev/issuer":                    "internal-ca",
		"certops.dev/spec-hash":                 "sha256:abc",
		"certops.dev/serial":                    "beef",
		"certops.dev/not-after":                 "2026-04-02T03:04:05Z",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if got := SecretAnnotations("web", nil, IssuerRef{}, ""); len(got) != 1 {
		t.Errorf("without a leaf: %v; want only the certificate name", got)
	}
}
