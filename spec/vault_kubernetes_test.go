package spec

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadVaultKubernetesAuth(t *testing.T) {
	const good = `apiVersion: certops.dev/v1alpha1
kind: Issuer
metadata:
  name: vault-k8s
spec:
  vault:
    server: https://vault.example.com:8200
    path: pki/sign/web
    namespace: platform
    auth:
      kubernetes:
        role: certops
        mountPath: /v1/auth/k8s-prod
        tokenFile: /var/run/secrets/vault/token
`
	const noRole = `apiVersion: certops.dev/v1alpha1
kind: Issuer
metadata:
  name: vault-norole
spec:
  vault:
    server: https://vault.example.com:8200
    path: pki/sign/web
    auth:
      kubernetes:
        mountPath: /v1/auth/kubernetes
`
	repo := Load(fstest.MapFS{
		"issuers/good.yaml":   {Data: []byte(good)},
		"issuers/norole.yaml": {Data: []byte(noRole)},
	}, LoadOptions{})
	iss := repo.Issuers["vault-k8s"]
	if iss == nil || iss.Spec.Vault == nil || iss.Spec.Vault.Auth.Kubernetes == nil {
		t.Fatalf("issuer vault-k8s with kubernetes auth not loaded; problems:\n%s", problemLines(repo.Problems))
	}
	k := iss.Spec.Vault.Auth.Kubernetes
	if k.Role != "certops" || k.MountPath != "/v1/auth/k8s-prod" || k.TokenFile != "/var/run/secrets/vault/token" || iss.Spec.Vault.Namespace != "platform" {
		t.Errorf("got role %q mountPath %q tokenFile %q namespace %q; want certops, /v1/auth/k8s-prod, /var/run/secrets/vault/token, platform",
			k.Role, k.MountPath, k.TokenFile, iss.Spec.Vault.Namespace)
	}
	var goodProblems, roleProblem []Problem
	for _, p := range repo.Problems {
		switch {
		case strings.HasSuffix(p.File, "good.yaml"):
			goodProblems = append(goodProblems, p)
		case strings.HasSuffix(p.File, "norole.yaml") && strings.Contains(problemLines([]Problem{p}), "spec.vault.auth.kubernetes.role"):
			roleProblem = append(roleProblem, p)
		}
	}
	if len(goodProblems) > 0 {
		t.Errorf("good issuer has problems:\n%s", problemLines(goodProblems))
	}
	if len(roleProblem) != 1 {
		t.Errorf("issuer without a role: got problems\n%s\nwant one at spec.vault.auth.kubernetes.role", problemLines(repo.Problems))
	}
}
