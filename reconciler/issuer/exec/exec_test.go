package exec_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"certops.dev/certops/reconciler/issuer"
	iexec "certops.dev/certops/reconciler/issuer/exec"
	"certops.dev/certops/reconciler/issuer/issuertest"
	"certops.dev/certops/reconciler/issuer/selfsigned"
)

// signScript is a small real CA: openssl signs the CSR from stdin with the
// CA keypair, copying the requested extensions, and the CA certificate
// follows the leaf. It fails with EX_DATAERR if the daemon's environment
// leaked into it.
const signScript = `#!/bin/sh
set -eu
if [ -n "${CERTOPS_LEAK_CHECK:-}" ]; then echo "environment leaked" >&2; exit 65; fi
openssl x509 -req -CA "$CA_CERT" -CAkey "$CA_KEY" -days "$CERTOPS_DURATION_DAYS" \
  -set_serial "0x$(openssl rand -hex 16)" -copy_extensions copyall 2>/dev/null
cat "$CA_CERT"
`

// newOpenSSLCA writes a test-only root CA (created by the selfsigned
// backend) and the signing script into a temporary directory that the test
// deletes.
func newOpenSSLCA(t testing.TB) (dir string, root *x509.Certificate) {
	t.Helper()
	if _, err := osexec.LookPath("openssl"); err != nil {
		t.Fatal("peer openssl not found on PATH: run `make deps` first")
	}
	key, keyPEM, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
	if err != nil {
		t.Fatal(err)
	}
	req, err := issuer.Template{CommonName: "exec test root", IsCA: true, Usages: []string{"cert sign", "crl sign"}}.NewRequest("t/root", key, 30*24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := selfsigned.New(selfsigned.NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	res, err := ss.SignSelf(context.Background(), req, key)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for name, data := range map[string][]byte{"ca.pem": res.ChainPEM, "ca.key": keyPEM, "sign.sh": []byte(signScript)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return dir, res.Leaf()
}

func newIssuer(t testing.TB, dir string, command ...string) *iexec.Issuer {
	t.Helper()
	cfg := iexec.NewDefaultConfig()
	cfg.Command = command
	cfg.Env = []string{"CA_CERT=" + filepath.Join(dir, "ca.pem"), "CA_KEY=" + filepath.Join(dir, "ca.key")}
	iss, err := iexec.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func TestConformanceWithOpenSSL(t *testing.T) {
	t.Setenv("CERTOPS_LEAK_CHECK", "the daemon's environment must not reach the command")
	issuertest.Run(t, func(t testing.TB) *issuertest.Harness {
		dir, root := newOpenSSLCA(t)
		return &issuertest.Harness{
			Issuer:    newIssuer(t, dir, filepath.Join(dir, "sign.sh")),
			Roots:     []*x509.Certificate{root},
			DNSName:   func(i int) string { return fmt.Sprintf("host%d.example.test", i) },
			IPAddress: issuertest.LoopbackIP,
			URI:       "spiffe://example.test/ns/default/sa/web",
			Email:     "ops@example.test",
		}
	}, issuertest.Unsupported{
		DurationDays: true, // openssl x509 -days (3.0) has day granularity
	})
}

func TestFailureClasses(t *testing.T) {
	dir, _ := newOpenSSLCA(t)
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
	if err != nil {
		t.Fatal(err)
	}
	req, err := issuer.Template{DNSNames: []string{"a.example.test"}}.NewRequest("t/a", key, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		want    issuer.Class
		wantMsg string
	}{
		{"tempfail", "echo 'ca busy' >&2; exit 75", 0, issuer.ClassTransient, "ca busy"},
		{"dataerr", "echo 'name not allowed' >&2; exit 65", 0, issuer.ClassPermanent, "name not allowed"},
		{"crash", "exit 1", 0, issuer.ClassTransient, "exit status 1"},
		{"not pem", "echo hello", 0, issuer.ClassPermanent, "trailing data"},
		{"empty", "true", 0, issuer.ClassPermanent, "empty certificate chain"},
		{"other key", `cat "$CA_CERT"`, 0, issuer.ClassPermanent, "another key"},
		{"timeout kills children", "sleep 60 & sleep 60; wait", 300 * time.Millisecond, issuer.ClassTransient, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := iexec.NewDefaultConfig()
			cfg.Command = []string{"/bin/sh", "-c", tt.script}
			cfg.Env = []string{"CA_CERT=" + filepath.Join(dir, "ca.pem")}
			if tt.timeout > 0 {
				cfg.Timeout = tt.timeout
			}
			iss, err := iexec.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = iss.Sign(context.Background(), req)
			if err == nil {
				t.Fatal("Sign succeeded; want an error")
			}
			if got := issuer.ClassOf(err); got != tt.want {
				t.Errorf("class: got %s (%v), want %s", got, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.wantMsg)
			}
			if tt.timeout > 0 && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("timeout error does not wrap context.DeadlineExceeded: %v", err)
			}
		})
	}
}

func TestNewValidatesEagerly(t *testing.T) {
	for _, cfg := range []*iexec.Config{nil, {}, {Command: []string{"/nonexistent/ca-cli"}}, {Command: []string{"/bin/sh"}, Env: []string{"NOEQUALS"}}} {
		if _, err := iexec.New(cfg); err == nil {
			t.Errorf("New(%+v): got nil error", cfg)
		}
	}
}
