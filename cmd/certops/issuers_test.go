package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/spec"
)

// The daemon builds Vault Kubernetes auth from the spec: the mount path,
// the role, the namespace, and the token file read again at every login.
// Vault is a stand-in that records logins; the real server is exercised in
// reconciler/issuer/vault.
func TestNewVaultKubernetesAuthFromSpec(t *testing.T) {
	var mu sync.Mutex
	var logins []map[string]any
	var namespaces []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		namespaces = append(namespaces, r.Header.Get("X-Vault-Namespace"))
		if r.URL.Path != "/v1/auth/k8s-prod/login" {
			w.WriteHeader(http.StatusForbidden) // sign: refused, which forces the next login
			_, _ = w.Write([]byte(`{"errors":["permission denied"]}`))
			return
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		logins = append(logins, body)
		_, _ = w.Write([]byte(`{"auth":{"client_token":"hvs.test","lease_duration":3600}}`))
	}))
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	iss := &spec.Issuer{Spec: spec.IssuerSpec{Vault: &spec.VaultIssuer{Server: srv.URL, Path: "pki/sign/web", Namespace: "platform",
		Auth: spec.VaultAuth{Kubernetes: &spec.VaultKubernetesAuth{Role: "certops", MountPath: "/v1/auth/k8s-prod", TokenFile: tokenFile}}}}}
	iss.Metadata.Name = "vault"
	b, err := newVault(context.Background(), iss, reconciler.IssuerEnv{})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
	if err != nil {
		t.Fatal(err)
	}
	req, err := issuer.Template{DNSNames: []string{"a.example.test"}}.NewRequest("t/a", key, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"jwt-one", "jwt-two"} {
		if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Sign(context.Background(), req); err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("Sign: got %v, want the stand-in's 403", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// First Sign: login, sign (403), one fresh login, sign (403). Second
	// Sign: the cached Vault token, sign (403), one fresh login, sign (403).
	var jwts []string
	for _, l := range logins {
		if l["role"] != "certops" {
			t.Errorf("login role: got %v, want certops", l["role"])
		}
		jwts = append(jwts, l["jwt"].(string))
	}
	if want := []string{"jwt-one", "jwt-one", "jwt-two"}; strings.Join(jwts, ",") != strings.Join(want, ",") {
		t.Errorf("login JWTs: got %v, want %v (the file read at every login)", jwts, want)
	}
	for i, ns := range namespaces {
		if ns != "platform" {
			t.Errorf("request %d: X-Vault-Namespace got %q, want platform", i, ns)
		}
	}
}

// An exec issuer runs only a command the daemon's operator allowed with
// --allow-exec: the repository alone cannot make the daemon run a program.
func TestExecIssuerNeedsAllowExec(t *testing.T) {
	iss := &spec.Issuer{Source: spec.Source{File: "issuers/hsm.yaml", Line: 1}}
	iss.Metadata.Name = "hsm"
	iss.Spec.Exec = &spec.ExecIssuer{Command: []string{"/bin/sh", "-c", "true"}}
	for _, allow := range [][]string{nil, {"/usr/local/bin/other"}, {"sh"}} {
		_, err := issuerFactories(allow)["exec"](context.Background(), iss, reconciler.IssuerEnv{})
		if err == nil || issuer.ClassOf(err) != issuer.ClassPermanent || !strings.Contains(err.Error(), "issuers/hsm.yaml:1") ||
			!strings.Contains(err.Error(), "--allow-exec") {
			t.Errorf("allow %q: %v, want a permanent refusal naming the file and --allow-exec", allow, err)
		}
	}
	if _, err := issuerFactories([]string{"/bin/sh"})["exec"](context.Background(), iss, reconciler.IssuerEnv{}); err != nil {
		t.Errorf("an allowed command is refused: %v", err)
	}
}
