package azuredns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// refreshMargin: a cached token is replaced this long before it expires.
// Five minutes, as the Azure SDK for Go (azidentity) does.
const refreshMargin = 5 * time.Minute

// tokenSource fetches ARM access tokens and caches one until refreshMargin
// before its expiry.
type tokenSource struct {
	cfg *Config
	now func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// get returns a valid access token, fetching a new one when needed.
func (s *tokenSource) get(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && s.now().Before(s.expires.Add(-refreshMargin)) {
		return s.token, nil
	}
	tok, ttl, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	s.token, s.expires = tok, s.now().Add(ttl)
	return tok, nil
}

// forget drops the cached token, after ARM refused it.
func (s *tokenSource) forget() {
	s.mu.Lock()
	s.token = ""
	s.mu.Unlock()
}

func (s *tokenSource) fetch(ctx context.Context) (string, time.Duration, error) {
	c := s.cfg
	scope := strings.TrimSuffix(c.Cloud.Audience, "/") + "/.default"
	var req *http.Request
	var err error
	switch c.AuthMethod {
	case AuthEnv, AuthWLI:
		form := url.Values{
			"grant_type": {"client_credentials"},
			"client_id":  {c.ClientID},
			"scope":      {scope},
		}
		if c.AuthMethod == AuthEnv {
			form.Set("client_secret", c.ClientSecret)
		} else {
			// Read at every request: the projected token is rotated by kubelet.
			b, rerr := os.ReadFile(c.FederatedTokenFile)
			if rerr != nil {
				return "", 0, permanent(fmt.Errorf("azuredns: %s: %w", EnvFederatedTokenFile, rerr))
			}
			form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			form.Set("client_assertion", strings.TrimSpace(string(b)))
		}
		u := strings.TrimSuffix(c.Cloud.AuthorityHost, "/") + "/" + url.PathEscape(c.TenantID) + "/oauth2/v2.0/token"
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	case AuthMSI:
		q := url.Values{"api-version": {"2018-02-01"}, "resource": {c.Cloud.Audience}}
		if c.ClientID != "" {
			q.Set("client_id", c.ClientID)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, c.IMDSEndpoint+"?"+q.Encode(), nil)
		if err == nil {
			req.Header.Set("Metadata", "true")
		}
	}
	if err != nil {
		return "", 0, permanent(fmt.Errorf("azuredns: token request (%s): %w", c.AuthMethod, err))
	}
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		return "", 0, transient(fmt.Errorf("azuredns: token request (%s): %w", c.AuthMethod, redactURLError(err)))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, transient(fmt.Errorf("azuredns: token response (%s): %w", c.AuthMethod, err))
	}
	var tr struct {
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.RawMessage `json:"expires_in"` // a number from Entra ID, a string from IMDS
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
	}
	_ = json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		msg := tr.Error
		if tr.Description != "" {
			msg += ": " + firstLine(tr.Description)
		}
		if msg == "" {
			msg = "no access token in the response"
		}
		err := fmt.Errorf("azuredns: token request (%s) for client %q in tenant %q: HTTP %d: %s",
			c.AuthMethod, c.ClientID, c.TenantID, resp.StatusCode, s.redact(msg))
		return "", 0, classifyStatus(resp, err)
	}
	secs, err := strconv.Atoi(strings.Trim(string(tr.ExpiresIn), `"`))
	if err != nil || secs <= 0 {
		// No usable lifetime: use the token once and fetch again next time.
		secs = 0
	}
	return tr.AccessToken, time.Duration(secs) * time.Second, nil
}

// redact removes the credentials the source knows of from s, for the rare
// identity server that echoes its input.
func (s *tokenSource) redact(msg string) string {
	for _, secret := range []string{s.cfg.ClientSecret, s.token} {
		if len(secret) >= 4 {
			msg = strings.ReplaceAll(msg, secret, "[redacted]")
		}
	}
	return msg
}

// firstLine keeps Entra ID's error description short: its first line holds
// the AADSTS code and the reason; trace and correlation ids follow.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// redactURLError drops the request URL from a transport error: for IMDS it
// carries no secret, but the message is shorter and the rule simpler.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, hostOf(ue.URL), ue.Err)
	}
	return err
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
}
