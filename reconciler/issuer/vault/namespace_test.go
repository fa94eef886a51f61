package vault_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/reconciler/issuer/vault"
)

// seen is one request the recording proxy forwarded.
type seen struct {
	path      string
	namespace string
	has       bool
}

// recordingProxy forwards to the real Vault and records each request's
// path and X-Vault-Namespace header.
func recordingProxy(t *testing.T, target string) (string, func() []seen) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	var mu sync.Mutex
	var log []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns, has := r.Header["X-Vault-Namespace"]
		s := seen{path: r.URL.Path, has: has}
		if has {
			s.namespace = ns[0]
		}
		mu.Lock()
		log = append(log, s)
		mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), log...)
	}
}

func TestNamespaceHeader(t *testing.T) {
	v := peer.StartVault(t)
	setupPKI(t, v)
	v.API(t, "POST", "/v1/sys/auth/approle", map[string]any{"type": "approle"})
	v.API(t, "PUT", "/v1/sys/policies/acl/certops", map[string]any{"policy": `path "pki/sign/web" { capabilities = ["create", "update"] }`})
	v.API(t, "POST", "/v1/auth/approle/role/certops", map[string]any{"token_policies": []string{"certops"}, "token_ttl": "1h"})
	roleID := v.API(t, "GET", "/v1/auth/approle/role/certops/role-id", nil)["data"].(map[string]any)["role_id"].(string)
	secretID := v.API(t, "POST", "/v1/auth/approle/role/certops/secret-id", nil)["data"].(map[string]any)["secret_id"].(string)

	// Open-source Vault has no namespaces: the API is not there at all.
	req, _ := http.NewRequest(http.MethodGet, v.Addr+"/v1/sys/namespaces?list=true", nil)
	req.Header.Set("X-Vault-Token", v.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET sys/namespaces on open-source Vault: got %d, want 404", resp.StatusCode)
	}

	for _, tt := range []struct {
		name, namespace string
	}{
		{"with namespace", "team-a/pki"},
		{"without namespace", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, requests := recordingProxy(t, v.Addr)
			iss, err := vault.New(&vault.Config{Address: addr, Path: "pki/sign/web", Namespace: tt.namespace,
				AppRole: &vault.AppRole{RoleID: roleID, SecretID: secretID}})
			if err != nil {
				t.Fatal(err)
			}
			// Open-source Vault ignores the header: login and signs land in
			// the root namespace, where the AppRole and PKI mounts are, and
			// succeed. Vault Enterprise or OpenBao would look for them in
			// the namespace instead.
			sign(t, iss, "ns1.example.test", time.Hour)
			sign(t, iss, "ns2.example.test", time.Hour)
			got := requests()
			want := []string{"/v1/auth/approle/login", "/v1/pki/sign/web", "/v1/pki/sign/web"}
			if len(got) != len(want) {
				t.Fatalf("requests: got %+v, want paths %v", got, want)
			}
			for i, r := range got {
				if r.path != want[i] {
					t.Errorf("request %d: got path %s, want %s", i, r.path, want[i])
				}
				if tt.namespace != "" && (!r.has || r.namespace != tt.namespace) {
					t.Errorf("request %d (%s): X-Vault-Namespace got %q (present %v), want %q", i, r.path, r.namespace, r.has, tt.namespace)
				}
				if tt.namespace == "" && r.has {
					t.Errorf("request %d (%s): X-Vault-Namespace %q sent without a namespace configured", i, r.path, r.namespace)
				}
			}
		})
	}
}
