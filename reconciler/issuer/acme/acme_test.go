package acme_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/acme"
	"certops.dev/certops/reconciler/issuer/acme/dnsproviders"
	"certops.dev/certops/reconciler/issuer/issuertest"
)

func init() { acme.SetLibraryLogger(slog.New(slog.DiscardHandler)) }

// memStore is the test's AccountStore; the daemon's is a SOPS-encrypted file.
type memStore struct {
	mu    sync.Mutex
	key   []byte
	saves int
}

func (s *memStore) Load(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key == nil {
		return nil, fs.ErrNotExist
	}
	return append([]byte(nil), s.key...), nil
}

func (s *memStore) Save(_ context.Context, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key, s.saves = append([]byte(nil), p...), s.saves+1
	return nil
}

// env is BIND (zone example.test, every name -> 127.0.0.1), certops'
// HTTP-01 listener on a loopback port, and Pebble validating against both.
type env struct {
	bind   *peer.BIND
	pebble *peer.Pebble
	http01 *acme.HTTP01Handler
}

func startEnv(t testing.TB, o peer.PebbleOptions) *env {
	t.Helper()
	e := &env{bind: peer.StartBIND(t, "example.test"), http01: acme.NewHTTP01Handler()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.http01.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("http-01 listener: %v", err)
		}
	})
	o.DNSServer = e.bind.Addr
	o.HTTPPort = ln.Addr().(*net.TCPAddr).Port
	e.pebble = peer.StartPebble(t, o)
	return e
}

func (e *env) config(store acme.AccountStore) *acme.Config {
	cfg := acme.NewDefaultConfig()
	cfg.DirectoryURL = e.pebble.DirectoryURL
	cfg.RootCAs = e.pebble.RootCAs
	cfg.AccountStore = store
	cfg.TermsOfServiceAgreed = true
	cfg.Email = "ops@example.test"
	cfg.Profile = "shortlived"
	cfg.HTTP01 = e.http01
	return cfg
}

func newIssuer(t testing.TB, cfg *acme.Config) *acme.Issuer {
	t.Helper()
	iss, err := acme.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func sign(t testing.TB, iss issuer.Issuer, names []string, replaces *x509.Certificate) (*issuer.Result, error) {
	t.Helper()
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
	if err != nil {
		t.Fatal(err)
	}
	req, err := issuer.Template{DNSNames: names}.NewRequest("t/"+names[0], key, 90*24*time.Hour, replaces)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return iss.Sign(ctx, req)
}

func TestConformanceHTTP01(t *testing.T) {
	issuertest.Run(t, func(t testing.TB) *issuertest.Harness {
		e := startEnv(t, peer.PebbleOptions{})
		return &issuertest.Harness{
			Issuer:    newIssuer(t, e.config(&memStore{})),
			Roots:     e.pebble.Roots(t)[:1],
			DNSName:   func(i int) string { return fmt.Sprintf("host%d.example.test", i) },
			IPAddress: issuertest.LoopbackIP, // RFC 8738 IP identifier, validated over HTTP-01 on loopback
		}
	}, issuertest.Unsupported{
		URIs:           true, // ACME has DNS and IP identifiers only
		EmailAddresses: true,
		Duration:       true, // the profile decides the lifetime
		Usages:         true, // the CA decides the usages
		IsCA:           true, // ACME CAs issue leaves only
		Ed25519:        true, // Pebble, like Let's Encrypt, refuses Ed25519 CSRs (badCSR)
		OtherNames:     true, // ACME cannot validate otherNames; Sign refuses them (TestRefusesOtherNames)
	})
}

// TestRefusesOtherNames: a request with otherNames is refused as permanent
// before the CA is contacted; the directory URL points at a closed port, so
// any network use would fail differently (transient).
func TestRefusesOtherNames(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", peer.FreePort(t)) // outside the ephemeral range: see peer.FreePort
	cfg := acme.NewDefaultConfig()
	cfg.DirectoryURL = "https://" + addr + "/dir"
	cfg.AccountStore = &memStore{}
	cfg.TermsOfServiceAgreed = true
	cfg.HTTP01 = acme.NewHTTP01Handler()
	iss := newIssuer(t, cfg)
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: issuer.ECDSA})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tmpl issuer.Template
		want string
	}{
		{"otherNames", issuer.Template{DNSNames: []string{"a.example.test"},
			OtherNames: []issuer.OtherName{{OID: issuer.OIDUPN, Value: "a@example.test"}}}, "ACME cannot carry otherName SANs"},
		{"DNS only reaches the network", issuer.Template{DNSNames: []string{"a.example.test"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := tc.tmpl.NewRequest("t/a", key, 90*24*time.Hour, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, err = iss.Sign(ctx, req)
			if err == nil {
				t.Fatal("Sign succeeded against a closed port")
			}
			if tc.want == "" {
				if issuer.ClassOf(err) == issuer.ClassPermanent {
					t.Errorf("Sign: got permanent %v; want the network failure (not permanent)", err)
				}
				return
			}
			if issuer.ClassOf(err) != issuer.ClassPermanent || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Sign: got %v (class %s), want a permanent error containing %q", err, issuer.ClassOf(err), tc.want)
			}
		})
	}
}

func TestDNS01ThroughBIND(t *testing.T) {
	e := startEnv(t, peer.PebbleOptions{})
	// Credentials reach lego's providers through the environment, as in the
	// daemon; dnsupdate is lego's RFC 2136 provider.
	t.Setenv("DNSUPDATE_NAMESERVER", e.bind.Addr)
	t.Setenv("DNSUPDATE_TSIG_KEY", e.bind.TSIGName)
	t.Setenv("DNSUPDATE_TSIG_SECRET", e.bind.TSIGSecret)
	t.Setenv("DNSUPDATE_TSIG_ALGORITHM", e.bind.TSIGAlgorithm)
	t.Setenv("DNSUPDATE_SEQUENCE_INTERVAL", "1")
	t.Setenv("DNSUPDATE_PROPAGATION_TIMEOUT", "30")
	t.Setenv("DNSUPDATE_POLLING_INTERVAL", "1")
	prov, err := dnsproviders.New("dnsupdate")
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config(&memStore{})
	cfg.HTTP01 = nil
	cfg.DNS01 = prov
	cfg.DNS01Resolvers = []string{e.bind.Addr}
	cfg.DNS01SkipPropagationCheck = true
	iss := newIssuer(t, cfg)

	// A wildcard needs DNS-01: this proves the TXT record went through BIND.
	res, err := sign(t, iss, []string{"*.dns.example.test", "dns.example.test"}, nil)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	roots := e.pebble.Roots(t)[:1]
	issuertest.VerifyChain(t, res, roots, x509.ExtKeyUsageServerAuth)
	issuertest.OpenSSLVerify(t, res, roots)
	if got := e.bind.TXT(t, "_acme-challenge.dns.example.test"); len(got) != 0 {
		t.Errorf("TXT records left after issuance: %q", got)
	}
}

func TestRenewalSendsReplacesAndReturnsARIWindow(t *testing.T) {
	e := startEnv(t, peer.PebbleOptions{})
	iss := newIssuer(t, e.config(&memStore{}))
	first, err := sign(t, iss, []string{"renew.example.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := first.RenewalHint
	leaf := first.Leaf()
	if w == nil {
		t.Fatal("no ARI renewal window from Pebble")
	}
	if !w.Start.Before(w.End) || w.Start.Before(leaf.NotBefore) || w.End.After(leaf.NotAfter) {
		t.Errorf("ARI window [%v, %v] not inside the certificate's validity [%v, %v]", w.Start, w.End, leaf.NotBefore, leaf.NotAfter)
	}
	second, err := sign(t, iss, []string{"renew.example.test"}, leaf)
	if err != nil {
		t.Fatalf("renewal: %v", err)
	}
	if second.Leaf().SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("renewal returned the same certificate")
	}
	wantID, err := api.MakeARICertID(leaf)
	if err != nil {
		t.Fatal(err)
	}
	replaces, profiles := e.pebble.OrderFields()
	if len(replaces) != 2 || replaces[0] != "" || replaces[1] != wantID {
		t.Errorf("replaces per order: got %q, want [\"\" %q]", replaces, wantID)
	}
	for i, p := range profiles {
		if p != "shortlived" {
			t.Errorf("order %d profile: got %q, want \"shortlived\"", i, p)
		}
	}
	if got, want := second.Leaf().NotAfter.Sub(second.Leaf().NotBefore), peer.PebbleProfiles["shortlived"]; got < want-time.Minute || got > want+time.Minute {
		t.Errorf("lifetime: got %s, want the shortlived profile's %s", got, want)
	}
	// Renewing the same certificate again: Pebble refuses a second
	// `replaces` (alreadyReplaced); the issuer orders without it.
	if _, err := sign(t, iss, []string{"renew.example.test"}, leaf); err != nil {
		t.Fatalf("second renewal of the same certificate: %v", err)
	}
	if replaces, _ := e.pebble.OrderFields(); replaces[len(replaces)-1] != "" {
		t.Errorf("last order after alreadyReplaced still sent replaces=%q", replaces[len(replaces)-1])
	}
}

func TestOrderFailureClasses(t *testing.T) {
	e := startEnv(t, peer.PebbleOptions{})
	iss := newIssuer(t, e.config(&memStore{}))
	// Register the account first, so injected failures hit the order.
	if _, err := sign(t, iss, []string{"warmup.example.test"}, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		inject func()
		dns    string
		want   issuer.Class
		wantAt time.Duration // for retry-after
	}{
		{name: "rejected identifier (Pebble's blocklist)", dns: "blocked.example.test", want: issuer.ClassPermanent},
		{name: "rate limited with Retry-After", dns: "rl.example.test", want: issuer.ClassRetryAfter, wantAt: 120 * time.Second,
			inject: func() {
				e.pebble.FailNextOrder(http.StatusTooManyRequests, legoacme.RateLimitedErrorType, "too many certificates", "120")
			}},
		{name: "rate limited without Retry-After", dns: "rl2.example.test", want: issuer.ClassRetryAfter, wantAt: time.Hour,
			inject: func() {
				e.pebble.FailNextOrder(http.StatusTooManyRequests, legoacme.RateLimitedErrorType, "too many certificates", "")
			}},
		{name: "server internal error", dns: "500.example.test", want: issuer.ClassTransient,
			inject: func() {
				e.pebble.FailNextOrder(http.StatusInternalServerError, legoacme.ServerInternalErrorType, "database on fire", "")
			}},
		{name: "malformed request", dns: "bad.example.test", want: issuer.ClassPermanent,
			inject: func() { e.pebble.FailNextOrder(http.StatusBadRequest, legoacme.MalformedErrorType, "bad order", "") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.inject != nil {
				tt.inject()
			}
			before := time.Now()
			_, err := sign(t, iss, []string{tt.dns}, nil)
			if err == nil {
				t.Fatal("Sign succeeded; want an error")
			}
			if got := issuer.ClassOf(err); got != tt.want {
				t.Fatalf("class: got %s (%v), want %s", got, err, tt.want)
			}
			if tt.wantAt > 0 {
				at, _ := issuer.RetryAt(err)
				if at.Before(before.Add(tt.wantAt)) || at.After(time.Now().Add(tt.wantAt)) {
					t.Errorf("retry at %v, want about %v from now", at, tt.wantAt)
				}
			}
		})
	}

	t.Run("challenge not served", func(t *testing.T) {
		cfg := e.config(&memStore{})
		cfg.HTTP01 = silent{} // presents nothing: Pebble's validation gets 404
		_, err := sign(t, newIssuer(t, cfg), []string{"silent.example.test"}, nil)
		var pd *legoacme.ProblemDetails
		if err == nil || !errors.As(err, &pd) {
			t.Fatalf("Sign: got %v, want an ACME problem", err)
		}
		if got := issuer.ClassOf(err); got != issuer.ClassTransient {
			t.Errorf("class: got %s (%v), want transient", got, err)
		}
	})
}

type silent struct{}

func (silent) Present(context.Context, string, string, string) error { return nil }
func (silent) CleanUp(context.Context, string, string, string) error { return nil }

func TestAccountKeyIsGeneratedOnceAndCounted(t *testing.T) {
	e := startEnv(t, peer.PebbleOptions{})
	store := &memStore{}
	var counted atomic.Int64
	cfg := e.config(store)
	cfg.OnRequest = func(method string, status int) { counted.Add(1) }
	if _, err := sign(t, newIssuer(t, cfg), []string{"acct.example.test"}, nil); err != nil {
		t.Fatal(err)
	}
	key := string(store.key)
	// A restarted daemon: a new issuer, the same store.
	if _, err := sign(t, newIssuer(t, cfg), []string{"acct.example.test"}, nil); err != nil {
		t.Fatal(err)
	}
	if store.saves != 1 || string(store.key) != key {
		t.Errorf("account key saved %d times (changed: %v); want once, unchanged", store.saves, string(store.key) != key)
	}
	if got, want := counted.Load(), int64(e.pebble.Requests()); got != want || got == 0 {
		t.Errorf("requests counted by OnRequest: %d; requests the CA saw: %d", got, want)
	}
	if got := e.pebble.Orders(); got != 2 {
		t.Errorf("orders: got %d, want 2", got)
	}
}

func TestExternalAccountBinding(t *testing.T) {
	e := startEnv(t, peer.PebbleOptions{RequireEAB: true})
	_, err := sign(t, newIssuer(t, e.config(&memStore{})), []string{"eab.example.test"}, nil)
	if issuer.ClassOf(err) != issuer.ClassPermanent || !strings.Contains(err.Error(), "externalAccountRequired") {
		t.Errorf("without EAB: got %v, want a permanent externalAccountRequired error", err)
	}
	cfg := e.config(&memStore{})
	cfg.EAB = &acme.ExternalAccountBinding{KeyID: e.pebble.EABKeyID, HMACKey: e.pebble.EABHMAC}
	if _, err := sign(t, newIssuer(t, cfg), []string{"eab.example.test"}, nil); err != nil {
		t.Errorf("with EAB: %v", err)
	}
}

func TestPreferredChain(t *testing.T) {
	e := startEnv(t, peer.PebbleOptions{AlternateRoots: 1})
	roots := e.pebble.Roots(t)
	if len(roots) != 2 {
		t.Fatalf("Pebble roots: got %d, want 2", len(roots))
	}
	// lego matches the preferred chain by its top certificate's issuer
	// common name: the alternate root's.
	cfg := e.config(&memStore{})
	cfg.PreferredChain = roots[1].Subject.CommonName
	res, err := sign(t, newIssuer(t, cfg), []string{"chain.example.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	issuertest.VerifyChain(t, res, roots[1:], x509.ExtKeyUsageServerAuth)
	issuertest.OpenSSLVerify(t, res, roots[1:])
}

func TestNewValidatesEagerly(t *testing.T) {
	tests := []struct {
		cfg  *acme.Config
		want []string
	}{
		{nil, []string{"nil config"}},
		{&acme.Config{DirectoryURL: "ftp://x"}, []string{"not an http(s) URL", "no account store", "no challenge solver"}},
		{&acme.Config{DirectoryURL: "https://ca.example.test/dir", AccountStore: &memStore{}, HTTP01: silent{}, EAB: &acme.ExternalAccountBinding{}}, []string{"keyID and hmacKey"}},
	}
	for _, tt := range tests {
		_, err := acme.New(tt.cfg)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("New(%+v): got %v, want it to mention %q", tt.cfg, err, w)
			}
		}
	}
}
