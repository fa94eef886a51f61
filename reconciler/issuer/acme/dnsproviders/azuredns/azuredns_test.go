package azuredns

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"certops.dev/certops/reconciler/issuer"
)

// txtValue is the DNS-01 record value of keyAuth (RFC 8555 section 8.4),
// computed here independently of lego.
func txtValue(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// noCNAME keeps lego's challenge helper off the network: it would follow
// CNAMEs of _acme-challenge names through real resolvers.
func noCNAME(t *testing.T) {
	t.Setenv("LEGO_DISABLE_CNAME_SUPPORT", "true")
}

func newProvider(t *testing.T, c *Config) *DNSProvider {
	t.Helper()
	p, err := NewDNSProviderConfig(c)
	if err != nil {
		t.Fatalf("NewDNSProviderConfig: %v", err)
	}
	return p
}

func TestPresentCleanUpTwoValuesOnOneName(t *testing.T) {
	noCNAME(t)
	f := newFakeAzure(t)
	// A value somebody else keeps in the same record set must survive.
	f.records["example.com/_acme-challenge.www"] = &fakeRecord{etag: "etag-0", ttl: 300, values: []string{"foreign"}}
	p := newProvider(t, f.config())
	ctx := context.Background()

	// Apex and wildcard of one name: two key authorizations, one TXT name.
	if err := p.Present(ctx, "example.com", "t1", "ka-apex"); err != nil {
		t.Fatalf("Present apex: %v", err)
	}
	if err := p.Present(ctx, "example.com", "t2", "ka-wildcard"); err != nil {
		t.Fatalf("Present wildcard: %v", err)
	}
	// Presenting again is idempotent.
	if err := p.Present(ctx, "example.com", "t2", "ka-wildcard"); err != nil {
		t.Fatalf("Present wildcard again: %v", err)
	}
	if got, want := f.values("example.com", "_acme-challenge"), []string{txtValue("ka-apex"), txtValue("ka-wildcard")}; !cmp.Equal(got, want) {
		t.Fatalf("after two Presents: got %v, want %v", got, want)
	}
	if got := f.records["example.com/_acme-challenge"].ttl; got != 60 {
		t.Errorf("TTL: got %d, want 60", got)
	}

	if err := p.CleanUp(ctx, "example.com", "t1", "ka-apex"); err != nil {
		t.Fatalf("CleanUp apex: %v", err)
	}
	if got, want := f.values("example.com", "_acme-challenge"), []string{txtValue("ka-wildcard")}; !cmp.Equal(got, want) {
		t.Fatalf("after one CleanUp: got %v, want %v", got, want)
	}
	if err := p.CleanUp(ctx, "example.com", "t2", "ka-wildcard"); err != nil {
		t.Fatalf("CleanUp wildcard: %v", err)
	}
	if f.exists("example.com", "_acme-challenge") {
		t.Errorf("record set still exists after both CleanUps: %v", f.values("example.com", "_acme-challenge"))
	}
	// Cleaning up what is gone is not an error.
	if err := p.CleanUp(ctx, "example.com", "t2", "ka-wildcard"); err != nil {
		t.Fatalf("CleanUp of an absent record: %v", err)
	}

	// A subdomain in a set holding a foreign value.
	if err := p.Present(ctx, "www.example.com", "t3", "ka-www"); err != nil {
		t.Fatalf("Present www: %v", err)
	}
	if got, want := f.values("example.com", "_acme-challenge.www"), []string{"foreign", txtValue("ka-www")}; !cmp.Equal(got, want) {
		t.Fatalf("www after Present: got %v, want %v", got, want)
	}
	if err := p.CleanUp(ctx, "www.example.com", "t3", "ka-www"); err != nil {
		t.Fatalf("CleanUp www: %v", err)
	}
	if got, want := f.values("example.com", "_acme-challenge.www"), []string{"foreign"}; !cmp.Equal(got, want) {
		t.Fatalf("www after CleanUp: got %v, want %v", got, want)
	}
	if n, _ := f.counts(); n != 1 {
		t.Errorf("tokens fetched: got %d, want 1 (cached)", n)
	}
}

func TestConcurrentWriterIsMergedNotOverwritten(t *testing.T) {
	noCNAME(t)
	f := newFakeAzure(t)
	p := newProvider(t, f.config())
	f.raceNextPut = "other-writer"
	if err := p.Present(context.Background(), "example.com", "t", "ka"); err != nil {
		t.Fatalf("Present: %v", err)
	}
	if got, want := f.values("example.com", "_acme-challenge"), []string{"other-writer", txtValue("ka")}; !cmp.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// assertNoSecrets fails when err's text holds a credential the fake knows.
func assertNoSecrets(t *testing.T, f *fakeAzure, err error) {
	t.Helper()
	f.mu.Lock()
	secrets := append([]string{f.secret, f.assertion}, f.issued...)
	f.mu.Unlock()
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error leaks a credential %q: %v", s, err)
		}
	}
}

func TestARMErrors(t *testing.T) {
	noCNAME(t)
	tests := []struct {
		name      string
		setup     func(f *fakeAzure, c *Config)
		wantClass issuer.Class
		wantIn    []string
		wantWait  time.Duration // for retry-after
	}{
		{
			name: "401 from ARM",
			setup: func(f *fakeAzure, _ *Config) {
				f.failNext = &fakeFailure{status: 401, code: "InvalidAuthenticationToken", msg: "The access token is invalid."}
			},
			wantClass: issuer.ClassPermanent,
			wantIn:    []string{"zone example.com", "record _acme-challenge", "HTTP 401", "InvalidAuthenticationToken", "The access token is invalid."},
		},
		{
			name:      "zone not found",
			setup:     func(f *fakeAzure, _ *Config) { delete(f.zones, "example.com") },
			wantClass: issuer.ClassPermanent,
			wantIn:    []string{"zone example.com", "HTTP 404", "ParentResourceNotFound"},
		},
		{
			name:      "resource group not found",
			setup:     func(_ *fakeAzure, c *Config) { c.ResourceGroup = "nope" },
			wantClass: issuer.ClassPermanent,
			wantIn:    []string{"HTTP 404", "ResourceGroupNotFound"},
		},
		{
			name: "throttled with Retry-After",
			setup: func(f *fakeAzure, _ *Config) {
				f.failNext = &fakeFailure{status: 429, code: "TooManyRequests", msg: "slow down", retryAfter: "120"}
			},
			wantClass: issuer.ClassRetryAfter,
			wantIn:    []string{"HTTP 429", "TooManyRequests"},
			wantWait:  120 * time.Second,
		},
		{
			name: "throttled without Retry-After",
			setup: func(f *fakeAzure, _ *Config) {
				f.failNext = &fakeFailure{status: 429, code: "TooManyRequests", msg: "slow down"}
			},
			wantClass: issuer.ClassRetryAfter,
			wantIn:    []string{"HTTP 429"},
			wantWait:  defaultThrottleWait,
		},
		{
			name: "server error",
			setup: func(f *fakeAzure, _ *Config) {
				f.failNext = &fakeFailure{status: 503, code: "ServiceUnavailable", msg: "try later"}
			},
			wantClass: issuer.ClassTransient,
			wantIn:    []string{"HTTP 503", "ServiceUnavailable"},
		},
		{
			name:      "wrong client secret",
			setup:     func(f *fakeAzure, c *Config) { c.ClientSecret = "wrong-Secret-Value-123"; f.echoSecret = true },
			wantClass: issuer.ClassPermanent,
			wantIn:    []string{"token request (env)", `client "client-1"`, "HTTP 401", "invalid_client", "AADSTS7000215"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAzure(t)
			c := f.config()
			tt.setup(f, c)
			p := newProvider(t, c)
			before := time.Now()
			err := p.Present(context.Background(), "example.com", "t", "ka")
			if err == nil {
				t.Fatal("Present succeeded; want an error")
			}
			if got := issuer.ClassOf(err); got != tt.wantClass {
				t.Errorf("class: got %s (%v), want %s", got, err, tt.wantClass)
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if tt.wantWait > 0 {
				at, _ := issuer.RetryAt(err)
				if at.Before(before.Add(tt.wantWait)) || at.After(time.Now().Add(tt.wantWait)) {
					t.Errorf("retry at %v, want %v after %v", at, tt.wantWait, before)
				}
			}
			assertNoSecrets(t, f, err)
			if strings.Contains(err.Error(), c.ClientSecret) {
				t.Errorf("error leaks the configured secret: %v", err)
			}
		})
	}
}

func TestARM401DropsTheCachedToken(t *testing.T) {
	noCNAME(t)
	f := newFakeAzure(t)
	p := newProvider(t, f.config())
	ctx := context.Background()
	if err := p.Present(ctx, "example.com", "t", "ka"); err != nil {
		t.Fatal(err)
	}
	// ARM stops accepting the token (revoked): the next request fails and
	// the one after fetches a fresh token.
	f.mu.Lock()
	clear(f.valid)
	f.mu.Unlock()
	err := p.CleanUp(ctx, "example.com", "t", "ka")
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("CleanUp with a revoked token: got %v, want HTTP 401", err)
	}
	assertNoSecrets(t, f, err)
	if err := p.CleanUp(ctx, "example.com", "t", "ka"); err != nil {
		t.Fatalf("CleanUp after 401: %v", err)
	}
	if n, _ := f.counts(); n != 2 {
		t.Errorf("tokens fetched: got %d, want 2", n)
	}
}

func TestTokenRefreshAfterExpiry(t *testing.T) {
	noCNAME(t)
	f := newFakeAzure(t)
	p := newProvider(t, f.config())
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	ctx := context.Background()
	step := func(d time.Duration, wantIssued int) {
		t.Helper()
		now = now.Add(d)
		if err := p.Present(ctx, "example.com", "t", "ka"); err != nil {
			t.Fatalf("Present at +%v: %v", d, err)
		}
		n, used := f.counts()
		if n != wantIssued {
			t.Fatalf("tokens fetched: got %d, want %d", n, wantIssued)
		}
		f.mu.Lock()
		last := f.issued[len(f.issued)-1]
		f.mu.Unlock()
		if used[len(used)-1] != last {
			t.Errorf("ARM got token %q, want the newest %q", used[len(used)-1], last)
		}
	}
	step(0, 1)
	step(50*time.Minute, 1)            // 10 min left: cached
	step(5*time.Minute+time.Second, 2) // inside the 5-minute margin: refreshed
	step(54*time.Minute, 2)            // the new one is still good
	step(time.Hour, 3)                 // long expired
}

func TestWorkloadIdentityRereadsTheTokenFile(t *testing.T) {
	noCNAME(t)
	f := newFakeAzure(t)
	f.expiresIn = 1 // below the refresh margin: every request fetches
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	write := func(tok string) {
		if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.assertion = tok
		f.mu.Unlock()
	}
	write("eyJhbGciOiJSUzI1NiJ9.federated-1.sig")
	c := f.config()
	c.ClientSecret, c.AuthMethod, c.FederatedTokenFile = "", "", file
	p := newProvider(t, c)
	if p.cfg.AuthMethod != AuthWLI {
		t.Fatalf("auth method: got %q, want %q (inferred from the token file)", p.cfg.AuthMethod, AuthWLI)
	}
	ctx := context.Background()
	if err := p.Present(ctx, "example.com", "t", "ka"); err != nil {
		t.Fatalf("Present: %v", err)
	}
	write("eyJhbGciOiJSUzI1NiJ9.federated-2.sig") // kubelet rotated it
	if err := p.CleanUp(ctx, "example.com", "t", "ka"); err != nil {
		t.Fatalf("CleanUp after rotation: %v", err)
	}
	// A stale assertion is refused, and the refusal does not quote it.
	f.mu.Lock()
	f.assertion = "eyJhbGciOiJSUzI1NiJ9.federated-3.sig"
	f.mu.Unlock()
	err := p.Present(ctx, "example.com", "t", "ka")
	if err == nil || issuer.ClassOf(err) != issuer.ClassPermanent {
		t.Fatalf("Present with a stale assertion: got %v, want a permanent error", err)
	}
	if strings.Contains(err.Error(), "federated-2") {
		t.Errorf("error leaks the federated token: %v", err)
	}
}

func TestManagedIdentity(t *testing.T) {
	noCNAME(t)
	f := newFakeAzure(t)
	c := f.config()
	c.ClientSecret, c.AuthMethod = "", AuthMSI
	p := newProvider(t, c)
	if err := p.Present(context.Background(), "example.com", "t", "ka"); err != nil {
		t.Fatalf("Present: %v", err)
	}
	if got := f.values("example.com", "_acme-challenge"); !slices.Contains(got, txtValue("ka")) {
		t.Errorf("record: got %v, want it to hold the challenge value", got)
	}
}

// clearAzureEnv empties every variable the package reads, and its _FILE twin.
func clearAzureEnv(t *testing.T) {
	for _, n := range []string{EnvClientID, EnvClientSecret, EnvTenantID, EnvSubscriptionID, EnvResourceGroup,
		EnvZoneName, EnvEnvironment, EnvTTL, EnvPropagationTimeout, EnvPollingInterval, EnvAuthMethod,
		EnvFederatedTokenFile, EnvAuthorityHost, EnvResourceManager, EnvIMDSEndpoint} {
		t.Setenv(n, "")
		t.Setenv(n+"_FILE", "")
	}
}

func TestFromEnvWithFileVariants(t *testing.T) {
	noCNAME(t)
	clearAzureEnv(t)
	f := newFakeAzure(t)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv(EnvClientSecret+"_FILE", file("secret", f.secret))
	t.Setenv(EnvClientID+"_FILE", file("client", fakeClient))
	t.Setenv(EnvTenantID, fakeTenant)
	t.Setenv(EnvSubscriptionID+"_FILE", file("sub", fakeSub))
	t.Setenv(EnvResourceGroup, fakeRG)
	t.Setenv(EnvZoneName+"_FILE", file("zone", "example.com"))
	t.Setenv(EnvTTL+"_FILE", file("ttl", "120"))
	t.Setenv(EnvPropagationTimeout, "300")
	t.Setenv(EnvPollingInterval, "5")
	t.Setenv(EnvAuthorityHost, f.srv.URL)
	t.Setenv(EnvResourceManager, f.srv.URL+"/")
	p, err := NewDNSProvider()
	if err != nil {
		t.Fatalf("NewDNSProvider: %v", err)
	}
	if to, iv := p.Timeout(); to != 5*time.Minute || iv != 5*time.Second {
		t.Errorf("Timeout: got %v, %v; want 5m, 5s", to, iv)
	}
	if err := p.Present(context.Background(), "example.com", "t", "ka"); err != nil {
		t.Fatalf("Present: %v", err)
	}
	if got := f.records["example.com/_acme-challenge"].ttl; got != 120 {
		t.Errorf("TTL: got %d, want 120 (from AZURE_TTL_FILE)", got)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		wantIn []string
	}{
		{"nothing set", nil, []string{EnvSubscriptionID + " is required", EnvResourceGroup + " is required"}},
		{"env auth lacks its ids", map[string]string{EnvSubscriptionID: "s", EnvResourceGroup: "g", EnvAuthMethod: "env"},
			[]string{EnvTenantID + " is required", EnvClientID + " is required", EnvClientSecret + " is required"}},
		{"unknown environment and method", map[string]string{EnvSubscriptionID: "s", EnvResourceGroup: "g", EnvEnvironment: "mars", EnvAuthMethod: "cli"},
			[]string{EnvEnvironment + `: unknown environment "mars"`}},
		{"unsupported method", map[string]string{EnvSubscriptionID: "s", EnvResourceGroup: "g", EnvAuthMethod: "cli"},
			[]string{EnvAuthMethod + `: unsupported method "cli"`}},
		{"bad numbers", map[string]string{EnvSubscriptionID: "s", EnvResourceGroup: "g", EnvTTL: "x", EnvPollingInterval: "-1"},
			[]string{EnvTTL + `: "x"`, EnvPollingInterval + `: "-1"`}},
		{"unreadable secret file", map[string]string{EnvSubscriptionID: "s", EnvResourceGroup: "g", EnvClientSecret + "_FILE": "/nonexistent/secret"},
			[]string{EnvClientSecret + "_FILE", "/nonexistent/secret"}},
		{"bad endpoint", map[string]string{EnvSubscriptionID: "s", EnvResourceGroup: "g", EnvResourceManager: "ftp://x"},
			[]string{EnvResourceManager + `: "ftp://x" is not an http(s) URL`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearAzureEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := NewDNSProvider()
			if err == nil {
				t.Fatal("NewDNSProvider succeeded; want an error")
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}
