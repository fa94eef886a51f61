package vault_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/e2e/peer/kubepeer"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/issuertest"
	"certops.dev/certops/reconciler/issuer/vault"
)

const k8sNS = "certops-system"

// saToken asks the apiserver's TokenRequest API for a token of sa. A
// non-empty boundSecret binds the token to that Secret: deleting the
// Secret invalidates the token.
func saToken(t *testing.T, cs kubernetes.Interface, sa string, audiences []string, boundSecret string) string {
	t.Helper()
	exp := int64(3600)
	tr := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &exp}}
	if boundSecret != "" {
		s, err := cs.CoreV1().Secrets(k8sNS).Get(context.Background(), boundSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tr.Spec.BoundObjectRef = &authv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: s.Name, UID: s.UID}
	}
	out, err := cs.CoreV1().ServiceAccounts(k8sNS).CreateToken(context.Background(), sa, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s: %v", sa, err)
	}
	return out.Status.Token
}

// clock is a settable clock for the issuer's login-token expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestKubernetesAuth(t *testing.T) {
	kube := kubepeer.StartKube(t)
	v := peer.StartVault(t)
	root := setupPKI(t, v)
	cs, err := kubernetes.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Cluster side: a namespace, the service account certops runs as, one
	// the Vault role does not bind, and a reviewer allowed to create
	// TokenReviews (system:auth-delegator, bootstrapped by RBAC).
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k8sNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, sa := range []string{"certops", "intruder", "vault-reviewer"} {
		if _, err := cs.CoreV1().ServiceAccounts(k8sNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vault-reviewer-auth-delegator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vault-reviewer", Namespace: k8sNS}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pod-1", "pod-2"} {
		if _, err := cs.CoreV1().Secrets(k8sNS).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	reviewerJWT := saToken(t, cs, "vault-reviewer", nil, "")

	// Vault side: Kubernetes auth against this apiserver, a role bound to
	// certops' service account and the "vault" audience.
	v.API(t, "POST", "/v1/sys/auth/kubernetes", map[string]any{"type": "kubernetes"})
	v.API(t, "POST", "/v1/auth/kubernetes/config", map[string]any{
		"kubernetes_host":      kube.Config.Host,
		"kubernetes_ca_cert":   string(kube.Config.CAData),
		"token_reviewer_jwt":   reviewerJWT,
		"disable_local_ca_jwt": true,
	})
	v.API(t, "PUT", "/v1/sys/policies/acl/certops", map[string]any{"policy": `path "pki/sign/web" { capabilities = ["create", "update"] }`})
	v.API(t, "POST", "/v1/auth/kubernetes/role/certops", map[string]any{
		"bound_service_account_names":      []string{"certops"},
		"bound_service_account_namespaces": []string{k8sNS},
		"audience":                         "vault",
		"token_policies":                   []string{"certops"},
		"token_ttl":                        "1h",
	})

	tokenFile := filepath.Join(t.TempDir(), "token")
	writeToken := func(tok string) {
		t.Helper()
		if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reviews := func() int { return kube.WriteCount(t, "tokenreviews") }

	clk := &clock{now: time.Now()}
	iss, err := vault.New(&vault.Config{Address: v.Addr, Path: "pki/sign/web", Now: clk.Now,
		Kubernetes: &vault.Kubernetes{Role: "certops", TokenFile: tokenFile}})
	if err != nil {
		t.Fatal(err)
	}
	roots := []*x509.Certificate{root}

	// First login, with a token bound to pod-1.
	tok1 := saToken(t, cs, "certops", []string{"vault"}, "pod-1")
	writeToken(tok1)
	before := reviews()
	res := sign(t, iss, "k8s.example.test", 24*time.Hour)
	issuertest.VerifyChain(t, res, roots, x509.ExtKeyUsageServerAuth)
	sign(t, iss, "k8s2.example.test", 24*time.Hour) // cached Vault token: no new login
	if got := reviews() - before; got != 1 {
		t.Errorf("TokenReviews for one login and two signs: got %d, want 1", got)
	}

	// kubelet rotates the token: the old one dies with pod-1, the file holds
	// a new one. Once the Vault token is due (80% of its 1h lease), the
	// next login must read the file again.
	writeToken(saToken(t, cs, "certops", []string{"vault"}, "pod-2"))
	if err := cs.CoreV1().Secrets(k8sNS).Delete(ctx, "pod-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The old token is really dead: a login with it is refused.
	oldFile := filepath.Join(t.TempDir(), "old-token")
	if err := os.WriteFile(oldFile, []byte(tok1), 0o600); err != nil {
		t.Fatal(err)
	}
	stale, err := vault.New(&vault.Config{Address: v.Addr, Path: "pki/sign/web", Kubernetes: &vault.Kubernetes{Role: "certops", TokenFile: oldFile}})
	if err != nil {
		t.Fatal(err)
	}
	// The apiserver learns of the deletion through its informers: poll.
	for deadline := time.Now().Add(90 * time.Second); ; {
		if _, err := trySign(t, stale, "stale.example.test", time.Hour); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("logins with the token of the deleted pod-1 still succeed; the rotation would prove nothing")
		}
		time.Sleep(200 * time.Millisecond)
		stale, _ = vault.New(&vault.Config{Address: v.Addr, Path: "pki/sign/web", Kubernetes: &vault.Kubernetes{Role: "certops", TokenFile: oldFile}})
	}
	clk.Add(49 * time.Minute)
	before = reviews()
	res = sign(t, iss, "k8s3.example.test", 24*time.Hour)
	issuertest.VerifyChain(t, res, roots, x509.ExtKeyUsageServerAuth)
	if got := reviews() - before; got != 1 {
		t.Errorf("TokenReviews for the second login: got %d, want 1", got)
	}

	// Refusals: each permanent, none quoting the token it was given.
	validCertops := saToken(t, cs, "certops", []string{"vault"}, "")
	parts := strings.Split(validCertops, ".")
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("not the apiserver's signature, but long enough to look like one"))
	for _, tt := range []struct {
		name, jwt string
	}{
		{"service account the role does not bind", saToken(t, cs, "intruder", []string{"vault"}, "")},
		{"token for another audience", saToken(t, cs, "certops", []string{"not-vault"}, "")},
		{"forged signature", forged},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(f, []byte(tt.jwt), 0o600); err != nil {
				t.Fatal(err)
			}
			bad, err := vault.New(&vault.Config{Address: v.Addr, Path: "pki/sign/web", Kubernetes: &vault.Kubernetes{Role: "certops", TokenFile: f}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = trySign(t, bad, "bad.example.test", time.Hour)
			if err == nil {
				t.Fatal("Sign succeeded; want a refused login")
			}
			if issuer.ClassOf(err) != issuer.ClassPermanent {
				t.Errorf("got %v (class %s), want permanent", err, issuer.ClassOf(err))
			}
			for _, secret := range []string{tt.jwt, parts[1], reviewerJWT} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error quotes a token: %v", err)
				}
			}
			t.Logf("refused: %v", err)
		})
	}
}
