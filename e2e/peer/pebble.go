package peer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Pebble is a running Pebble ACME server (github.com/letsencrypt/pebble/v2)
// behind a small TLS reverse proxy on loopback. The proxy counts requests
// and new orders, records the `replaces` field of every new order (RFC 9773)
// and can fail the next new order with a given ACME problem, to test how
// clients classify CA errors. Everything else is Pebble's own behaviour.
type Pebble struct {
	// DirectoryURL is the ACME directory, through the proxy.
	DirectoryURL string
	// RootCAs trusts the TLS certificate of the proxy and of Pebble.
	RootCAs *x509.CertPool
	// MgmtURL is Pebble's management interface (roots, intermediates).
	MgmtURL string
	// EABKeyID and EABHMAC are an external account binding Pebble accepts.
	EABKeyID, EABHMAC string

	client *http.Client

	mu       sync.Mutex
	orders   int
	requests int
	replaces []string
	profiles []string
	inject   *injectedProblem
}

// PebbleOptions configure StartPebble.
type PebbleOptions struct {
	// DNSServer is host:port of the DNS server Pebble resolves and validates
	// against (BIND for DNS-01; its wildcard A record sends HTTP-01 to loopback).
	DNSServer string
	// HTTPPort is the port Pebble fetches HTTP-01 tokens from.
	HTTPPort int
	// RequireEAB makes Pebble refuse accounts without external account binding.
	RequireEAB bool
	// AlternateRoots is the number of extra root/intermediate chains Pebble
	// offers (PEBBLE_ALTERNATE_ROOTS), for preferred-chain tests.
	AlternateRoots int
}

type injectedProblem struct {
	status     int
	typ        string
	detail     string
	retryAfter string
}

// Profiles Pebble is configured with: "default" (90 days) and "shortlived"
// (6 days), as in Pebble's own test configuration.
var PebbleProfiles = map[string]time.Duration{"default": 90 * 24 * time.Hour, "shortlived": 6 * 24 * time.Hour}

// StartPebble starts Pebble (built by e2e/tools) with its own TLS
// certificate generated in t.TempDir(), and the counting proxy in front.
func StartPebble(t testing.TB, o PebbleOptions) *Pebble {
	t.Helper()
	bin := Bin(t, "pebble")
	dir := t.TempDir()

	tlsCert, pool := loopbackTLS(t, dir)
	p := &Pebble{RootCAs: pool, EABKeyID: "certops-kid", EABHMAC: base64.RawURLEncoding.EncodeToString([]byte("certops-test-only-eab-mac-key-32b"))}
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	wfePort, mgmtPort, tlsPort := FreePort(t), FreePort(t), FreePort(t)
	httpPort := o.HTTPPort
	if httpPort == 0 {
		httpPort = FreePort(t)
	}
	profiles := map[string]any{}
	for name, d := range PebbleProfiles {
		profiles[name] = map[string]any{"description": name, "validityPeriod": int(d.Seconds())}
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", wfePort),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":                    filepath.Join(dir, "tls.crt"),
		"privateKey":                     filepath.Join(dir, "tls.key"),
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": o.RequireEAB,
		"externalAccountMACKeys":         map[string]string{p.EABKeyID: p.EABHMAC},
		"domainBlocklist":                []string{"blocked.example.test"},
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles":                       profiles,
	}}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-config", cfgPath, "-strict"}
	if o.DNSServer != "" {
		args = append(args, "-dnsserver", o.DNSServer)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0",
		fmt.Sprintf("PEBBLE_ALTERNATE_ROOTS=%d", o.AlternateRoots))
	logPath := filepath.Join(dir, "pebble.log")
	exited := startLogged(t, "pebble", cmd, logPath)

	backend := &url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", wfePort)}
	p.MgmtURL = fmt.Sprintf("https://127.0.0.1:%d", mgmtPort)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(backend)
			r.Out.Host = r.In.Host // Pebble builds its URLs from Host: keep them pointing at the proxy
		},
		Transport: p.client.Transport,
		// Dial errors while Pebble starts are expected; the readiness loop
		// below reports a Pebble that never comes up.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p.count(rp), TLSConfig: &tls.Config{Certificates: []tls.Certificate{tlsCert}}, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { _ = srv.ServeTLS(ln, "", ""); close(served) }()
	t.Cleanup(func() { srv.Close(); <-served })
	p.DirectoryURL = fmt.Sprintf("https://%s/dir", ln.Addr())

	deadline := time.Now().Add(90 * time.Second) // generous: CI machines are shared and loaded
	for {
		resp, err := p.client.Get(p.DirectoryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logPath)
			t.Fatalf("pebble exited:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble not ready at %s: %v", p.DirectoryURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.mu.Lock()
	p.requests = 0 // readiness probes are not client requests
	p.mu.Unlock()
	return p
}

func (p *Pebble) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests++
		isOrder := r.Method == http.MethodPost && r.URL.Path == "/order-plz"
		var inj *injectedProblem
		if isOrder {
			p.orders++
			inj, p.inject = p.inject, nil
		}
		p.mu.Unlock()
		if isOrder {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			var jws struct{ Payload string }
			var order struct{ Replaces, Profile string }
			if json.Unmarshal(body, &jws) == nil {
				if raw, err := base64.RawURLEncoding.DecodeString(jws.Payload); err == nil && json.Unmarshal(raw, &order) == nil {
					p.mu.Lock()
					p.replaces = append(p.replaces, order.Replaces)
					p.profiles = append(p.profiles, order.Profile)
					p.mu.Unlock()
				}
			}
		}
		if inj != nil {
			if inj.retryAfter != "" {
				w.Header().Set("Retry-After", inj.retryAfter)
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(inj.status)
			_ = json.NewEncoder(w).Encode(map[string]any{"type": inj.typ, "detail": inj.detail, "status": inj.status})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Orders returns the number of new-order requests so far.
func (p *Pebble) Orders() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orders
}

// Requests returns the number of requests to the ACME API so far.
func (p *Pebble) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// OrderFields returns, per new order so far, the `replaces` and `profile`
// fields the client sent ("" when absent).
func (p *Pebble) OrderFields() (replaces, profiles []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.replaces...), append([]string(nil), p.profiles...)
}

// FailNextOrder makes the proxy answer the next new-order request with an
// ACME problem document (RFC 8555 section 6.7) instead of passing it to
// Pebble, which has no rate limits or outages of its own. retryAfter is
// the Retry-After header value, or "".
func (p *Pebble) FailNextOrder(status int, problemType, detail, retryAfter string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inject = &injectedProblem{status: status, typ: problemType, detail: detail, retryAfter: retryAfter}
}

// Roots returns Pebble's root certificates (generated at every start): the
// default chain's first, then the alternates'.
func (p *Pebble) Roots(t testing.TB) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for i := 0; ; i++ {
		resp, err := p.client.Get(fmt.Sprintf("%s/roots/%d", p.MgmtURL, i))
		if err != nil {
			t.Fatalf("pebble roots: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			break
		}
		b, _ := pem.Decode(body)
		if b == nil {
			t.Fatalf("pebble root %d: no PEM", i)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatal("pebble has no roots")
	}
	return out
}

// loopbackTLS writes a test-only CA and a certificate for 127.0.0.1 and
// localhost into dir (tls.crt, tls.key) and returns the certificate and a
// pool trusting the CA.
func loopbackTLS(t testing.TB, dir string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "certops test loopback CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pair, pool
}

func tail(b []byte, n int) string {
	s := string(b)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}
