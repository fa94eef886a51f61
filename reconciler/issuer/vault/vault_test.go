package vault_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/issuertest"
	"certops.dev/certops/reconciler/issuer/vault"
)

// setupPKI mounts a PKI engine on a real dev server, generates its root and
// a role for *.example.test, and returns the root.
func setupPKI(t testing.TB, v *peer.Vault) *x509.Certificate {
	t.Helper()
	v.API(t, "POST", "/v1/sys/mounts/pki", map[string]any{"type": "pki", "config": map[string]any{"max_lease_ttl": "87600h"}})
	out := v.API(t, "POST", "/v1/pki/root/generate/internal", map[string]any{"common_name": "certops vault test root", "ttl": "8760h"})
	root, err := issuer.ParseCertificatesPEM([]byte(out["data"].(map[string]any)["certificate"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	v.API(t, "POST", "/v1/pki/roles/web", map[string]any{
		"allowed_domains":    []string{"example.test"},
		"allow_subdomains":   true,
		"allow_bare_domains": true,
		"allow_ip_sans":      true,
		"allowed_uri_sans":   []string{"spiffe://example.test/*"},
		// otherNames come from the CSR (use_csr_sans); the role still
		// names the types and values it allows.
		"allowed_other_sans": []string{"1.3.6.1.4.1.311.20.2.3;UTF8:*@example.test"},
		"require_cn":         false,
		"key_type":           "any",
		"max_ttl":            "720h",
	})
	return root[0]
}

func harness(t testing.TB, v *peer.Vault, root *x509.Certificate, cfg *vault.Config) *issuertest.Harness {
	iss, err := vault.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &issuertest.Harness{
		Issuer:    iss,
		Roots:     []*x509.Certificate{root},
		DNSName:   func(i int) string { return fmt.Sprintf("host%d.example.test", i) },
		IPAddress: issuertest.LoopbackIP,
		URI:       "spiffe://example.test/ns/default/sa/web",
		UPN:       "conformance@example.test",
	}
}

var unsupported = issuertest.Unsupported{
	EmailAddresses: true, // the role allows DNS, IP and URI SANs only
	Usages:         true, // the role decides key usages
	IsCA:           true, // pki/sign issues leaves; CAs go through sign-intermediate
}

func TestConformanceTokenAuth(t *testing.T) {
	issuertest.Run(t, func(t testing.TB) *issuertest.Harness {
		v := peer.StartVault(t)
		root := setupPKI(t, v)
		return harness(t, v, root, &vault.Config{Address: v.Addr, Path: "pki/sign/web", Token: v.Token})
	}, unsupported)
}

func TestAppRoleAuth(t *testing.T) {
	v := peer.StartVault(t)
	root := setupPKI(t, v)
	v.API(t, "POST", "/v1/sys/auth/approle", map[string]any{"type": "approle"})
	v.API(t, "PUT", "/v1/sys/policies/acl/certops", map[string]any{"policy": `path "pki/sign/web" { capabilities = ["create", "update"] }`})
	v.API(t, "POST", "/v1/auth/approle/role/certops", map[string]any{"token_policies": []string{"certops"}, "token_ttl": "1h"})
	roleID := v.API(t, "GET", "/v1/auth/approle/role/certops/role-id", nil)["data"].(map[string]any)["role_id"].(string)
	secretID := v.API(t, "POST", "/v1/auth/approle/role/certops/secret-id", nil)["data"].(map[string]any)["secret_id"].(string)

	var requests atomic.Int64
	cfg := &vault.Config{Address: v.Addr, Path: "pki/sign/web", AppRole: &vault.AppRole{RoleID: roleID, SecretID: secretID},
		OnRequest: func(string, int) { requests.Add(1) }}
	h := harness(t, v, root, cfg)
	res := sign(t, h.Issuer, "approle.example.test", 24*time.Hour)
	issuertest.VerifyChain(t, res, h.Roots, x509.ExtKeyUsageServerAuth)
	issuertest.OpenSSLVerify(t, res, h.Roots)
	sign(t, h.Issuer, "approle2.example.test", 24*time.Hour)
	// One login, two signs: the login token is cached.
	if got := requests.Load(); got != 3 {
		t.Errorf("requests to Vault: got %d, want 3 (login + 2 signs)", got)
	}

	t.Run("wrong secret is permanent", func(t *testing.T) {
		bad, err := vault.New(&vault.Config{Address: v.Addr, Path: "pki/sign/web", AppRole: &vault.AppRole{RoleID: roleID, SecretID: "00000000-0000-0000-0000-000000000000"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = trySign(t, bad, "x.example.test", time.Hour)
		if issuer.ClassOf(err) != issuer.ClassPermanent || strings.Contains(err.Error(), secretID) {
			t.Errorf("got %v (class %s), want a permanent error without the secret", err, issuer.ClassOf(err))
		}
	})
	t.Run("policy refuses another role", func(t *testing.T) {
		v.API(t, "POST", "/v1/pki/roles/other", map[string]any{"allow_any_name": true})
		other, err := vault.New(&vault.Config{Address: v.Addr, Path: "pki/sign/other", AppRole: &vault.AppRole{RoleID: roleID, SecretID: secretID}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = trySign(t, other, "x.example.test", time.Hour)
		if issuer.ClassOf(err) != issuer.ClassPermanent || !strings.Contains(err.Error(), "403") {
			t.Errorf("got %v (class %s), want a permanent 403", err, issuer.ClassOf(err))
		}
	})
}

func TestRoleRefusals(t *testing.T) {
	v := peer.StartVault(t)
	setupPKI(t, v)
	iss, err := vault.New(&vault.Config{Address: v.Addr, Path: "pki/sign/web", Token: v.Token})
	if err != nil {
		t.Fatal(err)
	}
	_, err = trySign(t, iss, "www.example.org", time.Hour)
	if issuer.ClassOf(err) != issuer.ClassPermanent || !strings.Contains(err.Error(), "not allowed by this role") {
		t.Errorf("name outside the role: got %v (class %s), want a permanent refusal", err, issuer.ClassOf(err))
	}
	// A TTL above the role's max_ttl is capped by Vault, not refused.
	res, err := trySign(t, iss, "long.example.test", 2000*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Leaf().NotAfter.Sub(res.Leaf().NotBefore); got > 721*time.Hour {
		t.Errorf("lifetime %s exceeds the role's max_ttl 720h", got)
	}
	down, err := vault.New(&vault.Config{Address: "http://127.0.0.1:1", Path: "pki/sign/web", Token: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trySign(t, down, "a.example.test", time.Hour); issuer.ClassOf(err) != issuer.ClassTransient {
		t.Errorf("Vault unreachable: got %v (class %s), want transient", err, issuer.ClassOf(err))
	}
}

func sign(t testing.TB, iss issuer.Issuer, name string, d time.Duration) *issuer.Result {
	t.Helper()
	res, err := trySign(t, iss, name, d)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func trySign(t testing.TB, iss issuer.Issuer, name string, d time.Duration) (*issuer.Result, error) {
	t.Helper()
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
	if err != nil {
		t.Fatal(err)
	}
	req, err := issuer.Template{DNSNames: []string{name}, Usages: []string{"server auth"}}.NewRequest("t/"+name, key, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return iss.Sign(ctx, req)
}
