package vault_test

import (
	"strings"
	"testing"

	"certops.dev/certops/reconciler/issuer/vault"
)

func TestNewValidatesEagerly(t *testing.T) {
	tests := []struct {
		cfg  *vault.Config
		want []string
	}{
		{nil, []string{"nil config"}},
		{&vault.Config{}, []string{"not an http(s) URL", "not <mount>/sign/<role>", "exactly one of token, appRole, kubernetes; got 0"}},
		{&vault.Config{Address: "https://v:8200", Path: "pki/issue/web", Token: "t"}, []string{"not <mount>/sign/<role>"}},
		{&vault.Config{Address: "https://v:8200", Path: "pki/sign/web", Token: "t", AppRole: &vault.AppRole{}}, []string{"needs roleID and secretID", "got 2"}},
		{&vault.Config{Address: "https://v:8200", Path: "pki/sign/web", Kubernetes: &vault.Kubernetes{}, CABundle: []byte("x")}, []string{"needs a role", "no PEM certificate"}},
	}
	for _, tt := range tests {
		_, err := vault.New(tt.cfg)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("New(%+v): got %v, want it to mention %q", tt.cfg, err, w)
			}
		}
	}
	if _, err := vault.New(&vault.Config{Address: "https://v:8200", Path: "ns1/pki/sign/web", Kubernetes: &vault.Kubernetes{Role: "certops"}}); err != nil {
		t.Errorf("valid kubernetes config: %v", err)
	}
}
