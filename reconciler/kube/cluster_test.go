package kube

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

const testKubeconfig = `apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
- name: prod
  cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: bot
  user: {token: not-a-real-token}
contexts:
- name: dev
  context: {cluster: dev, user: bot}
- name: prod
  context: {cluster: prod, user: bot}
`

func TestRESTConfigFromKubeconfig(t *testing.T) {
	tests := []struct {
		name, context, wantHost string
		wantErr                 error
	}{
		{"current context", "", "https://127.0.0.1:6443", nil},
		{"named context", "prod", "https://10.0.0.1:6443", nil},
		{"missing context", "staging", "", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := RESTConfigFromKubeconfig([]byte(testKubeconfig), tt.context)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v; want %v", err, tt.wantErr)
			}
			if err == nil && rc.Host != tt.wantHost {
				t.Errorf("host %s; want %s", rc.Host, tt.wantHost)
			}
			if err != nil && strings.Contains(err.Error(), "not-a-real-token") {
				t.Errorf("error quotes a credential: %v", err)
			}
		})
	}
}

func TestNewCluster(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     ClusterConfig
		wantErr error
	}{
		{"kubeconfig path", ClusterConfig{KubeconfigPath: path, Context: "prod"}, nil},
		{"kubeconfig bytes", ClusterConfig{Kubeconfig: []byte(testKubeconfig)}, nil},
		{"rest config", ClusterConfig{REST: &rest.Config{Host: "https://127.0.0.1:1"}}, nil},
		{"none", ClusterConfig{}, ErrInvalid},
		{"two", ClusterConfig{KubeconfigPath: path, Kubeconfig: []byte(testKubeconfig)}, ErrInvalid},
		{"garbage bytes", ClusterConfig{Kubeconfig: []byte("{not yaml")}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCluster("dev", tt.cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v; want %v", err, tt.wantErr)
			}
			if err == nil && c.Name() != "dev" {
				t.Errorf("name %q", c.Name())
			}
		})
	}
	if _, err := NewCluster("", ClusterConfig{Kubeconfig: []byte(testKubeconfig)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty name: %v; want ErrInvalid", err)
	}
}

func TestClusterErrorMessages(t *testing.T) {
	tests := []struct {
		err      error
		kind     error
		contains string
	}{
		{refused(), ErrUnreachable, "kube: cluster prod: list secrets namespace web: unreachable: "},
		{forbidden(), ErrForbidden, "forbidden by the cluster's RBAC"},
	}
	for _, tt := range tests {
		err := error(&ClusterError{Cluster: "prod", Op: "list secrets", Namespace: "web", Err: tt.err})
		if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.contains) {
			t.Errorf("%v: want kind %v and text %q", err, tt.kind, tt.contains)
		}
	}
}

func TestRouteKlog(t *testing.T) {
	var buf bytes.Buffer
	RouteKlog(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { klog.ClearLogger() })
	klog.Info("throttled")
	klog.Flush()
	if !strings.Contains(buf.String(), `"msg":"throttled"`) || !strings.Contains(buf.String(), `"component":"client-go"`) {
		t.Errorf("slog got %q; want the klog line with component=client-go", buf.String())
	}
}

// FuzzRESTConfigFromKubeconfig: kubeconfigs come from the repository
// (decrypted) or the host; parsing must not panic nor leak their content.
func FuzzRESTConfigFromKubeconfig(f *testing.F) {
	f.Add([]byte(testKubeconfig), "")
	f.Add([]byte(testKubeconfig), "prod")
	f.Add([]byte("apiVersion: v1\nkind: Config\n"), "")
	f.Add([]byte("{}"), "x")
	f.Fuzz(func(t *testing.T, data []byte, context string) {
		_, err := RESTConfigFromKubeconfig(data, context)
		if err != nil && len(data) > 8 && strings.Contains(err.Error(), string(data)) {
			t.Errorf("error quotes the kubeconfig: %v", err)
		}
	})
}

// TestClusterAsksForUncompressedResponses: certops' requests do not
// accept gzip, through the metadata and the typed client, whether
// client-go gives the server its shared default transport (no TLS
// settings of its own) or a transport of its own (here, TLS).
func TestClusterAsksForUncompressedResponses(t *testing.T) {
	for _, tls := range []bool{false, true} {
		var mu sync.Mutex
		var encodings []string
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			encodings = append(encodings, r.Header.Get("Accept-Encoding"))
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			if strings.Contains(r.Header.Get("Accept"), "PartialObjectMetadataList") {
				_, _ = w.Write([]byte(`{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadataList","items":[]}`))
				return
			}
			_, _ = w.Write([]byte(`{"apiVersion":"v1","kind":"SecretList","items":[]}`))
		})
		srv := httptest.NewServer(h)
		rc := &rest.Config{Host: srv.URL, BearerToken: "token"}
		if tls {
			srv.Close()
			srv = httptest.NewTLSServer(h)
			rc = &rest.Config{Host: srv.URL, BearerToken: "token", TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
		}
		c, err := NewCluster("dev", ClusterConfig{REST: rc, Namespaces: []string{"web"}, Prune: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Prune(t.Context(), nil); err != nil { // the metadata client
			t.Fatal(err)
		}
		c.meta = nil
		if _, err := c.Prune(t.Context(), nil); err != nil { // the typed client
			t.Fatal(err)
		}
		srv.Close()
		if len(encodings) != 2 {
			t.Fatalf("TLS %v: %d requests reached the server, want 2", tls, len(encodings))
		}
		for _, e := range encodings {
			if strings.Contains(e, "gzip") {
				t.Errorf("TLS %v: a request accepts %q", tls, e)
			}
		}
	}
}
