package azuredns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/challenge/dns01"

	"certops.dev/certops/reconciler/issuer"
)

var _ challenge.ProviderTimeout = (*DNSProvider)(nil)

// apiVersion of Microsoft.Network/dnsZones record sets.
const apiVersion = "2018-05-01"

// defaultThrottleWait applies to a 429 without Retry-After. One minute: ARM
// refills its per-principal request buckets continuously, and the reads a
// DNS-01 round makes are few.
const defaultThrottleWait = time.Minute

// maxConflicts bounds read-merge-write rounds that lose an ETag race.
const maxConflicts = 5

// DNSProvider presents DNS-01 TXT records in an Azure DNS zone.
type DNSProvider struct {
	cfg    *Config
	tokens *tokenSource
	now    func() time.Time
	// mu serialises this provider's read-merge-write rounds; ETags guard
	// against other writers.
	mu sync.Mutex
}

// NewDNSProvider builds a provider from the environment.
func NewDNSProvider() (*DNSProvider, error) {
	c, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return NewDNSProviderConfig(c)
}

// NewDNSProviderConfig builds a provider from c, validating it.
func NewDNSProviderConfig(c *Config) (*DNSProvider, error) {
	if c == nil {
		return nil, errors.New("azuredns: nil config")
	}
	cc := *c
	if cc.HTTPClient == nil {
		cc.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if err := cc.validate(); err != nil {
		return nil, fmt.Errorf("azuredns: %w", err)
	}
	p := &DNSProvider{cfg: &cc, now: time.Now}
	p.tokens = &tokenSource{cfg: &cc, now: func() time.Time { return p.now() }}
	return p, nil
}

// Timeout returns the propagation timeout and polling interval.
func (d *DNSProvider) Timeout() (timeout, interval time.Duration) {
	return d.cfg.PropagationTimeout, d.cfg.PollingInterval
}

// Present adds the challenge value to the TXT record set, keeping values
// already there.
func (d *DNSProvider) Present(ctx context.Context, domain, token, keyAuth string) error {
	info := dns01.GetChallengeInfo(ctx, domain, keyAuth)
	zone, rel, err := d.locate(ctx, info.EffectiveFQDN)
	if err != nil {
		return err
	}
	return d.update(ctx, zone, rel, func(values []string) []string {
		if slices.Contains(values, info.Value) {
			return values
		}
		return append(values, info.Value)
	})
}

// CleanUp removes the challenge value, and the record set once it is empty.
func (d *DNSProvider) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	info := dns01.GetChallengeInfo(ctx, domain, keyAuth)
	zone, rel, err := d.locate(ctx, info.EffectiveFQDN)
	if err != nil {
		return err
	}
	return d.update(ctx, zone, rel, func(values []string) []string {
		return slices.DeleteFunc(values, func(v string) bool { return v == info.Value })
	})
}

// locate returns the zone (without trailing dot) and the record name
// relative to it.
func (d *DNSProvider) locate(ctx context.Context, fqdn string) (zone, rel string, err error) {
	zone = d.cfg.ZoneName
	if zone == "" {
		zone, err = dns01.DefaultClient().FindZoneByFqdn(ctx, fqdn)
		if err != nil {
			return "", "", transient(fmt.Errorf("azuredns: find the zone of %s: %w", fqdn, err))
		}
	}
	zone = dns01.UnFqdn(zone)
	if dns01.UnFqdn(fqdn) == zone {
		return zone, "@", nil
	}
	rel, err = dns01.ExtractSubDomain(fqdn, zone)
	if err != nil {
		return "", "", permanent(fmt.Errorf("azuredns: zone %s: %w", zone, err))
	}
	return zone, rel, nil
}

// recordSet is the part of ARM's TXT record set this provider uses.
type recordSet struct {
	ETag       string `json:"etag,omitempty"`
	Properties struct {
		TTL        int `json:"TTL"`
		TXTRecords []struct {
			Value []string `json:"value"`
		} `json:"TXTRecords"`
	} `json:"properties"`
}

// values flattens the record set; a TXT record of several strings is one
// value (RFC 7208 section 3.3 joins them).
func (r *recordSet) values() []string {
	var out []string
	for _, t := range r.Properties.TXTRecords {
		out = append(out, strings.Join(t.Value, ""))
	}
	return out
}

// update applies change to the TXT values of zone/rel: read, change, write
// with the read ETag as precondition, again on a lost race.
func (d *DNSProvider) update(ctx context.Context, zone, rel string, change func([]string) []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.recordURL(zone, rel)
	for range maxConflicts {
		cur, found, err := d.get(ctx, u, zone, rel)
		if err != nil {
			return err
		}
		old := cur.values()
		next := change(slices.Clone(old))
		if slices.Equal(old, next) && (found || len(next) == 0) {
			return nil
		}
		var status int
		if len(next) == 0 {
			status, err = d.do(ctx, http.MethodDelete, u, zone, rel, cur.ETag, nil, http.StatusOK, http.StatusNoContent, http.StatusNotFound)
		} else {
			var rs recordSet
			rs.Properties.TTL = d.cfg.TTL
			for _, v := range next {
				rs.Properties.TXTRecords = append(rs.Properties.TXTRecords, struct {
					Value []string `json:"value"`
				}{Value: []string{v}})
			}
			etag := cur.ETag
			if !found {
				etag = "*new*"
			}
			status, err = d.do(ctx, http.MethodPut, u, zone, rel, etag, &rs, http.StatusOK, http.StatusCreated)
		}
		if status == http.StatusPreconditionFailed {
			continue // someone else wrote the record set between our read and write
		}
		return err
	}
	return transient(fmt.Errorf("azuredns: zone %s, record %s: the record set kept changing under %d read-modify-write attempts", zone, rel, maxConflicts))
}

func (d *DNSProvider) recordURL(zone, rel string) string {
	return fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/dnsZones/%s/TXT/%s?api-version=%s",
		strings.TrimSuffix(d.cfg.Cloud.ResourceManager, "/"),
		url.PathEscape(d.cfg.SubscriptionID), url.PathEscape(d.cfg.ResourceGroup),
		url.PathEscape(zone), url.PathEscape(rel), apiVersion)
}

// get reads the record set; found is false when it does not exist. A
// missing zone or resource group is an error.
func (d *DNSProvider) get(ctx context.Context, u, zone, rel string) (rs recordSet, found bool, err error) {
	body, status, aerr, err := d.send(ctx, http.MethodGet, u, "", nil)
	if err != nil {
		return rs, false, d.wrap(err, http.MethodGet, zone, rel)
	}
	switch {
	case status == http.StatusOK:
		if err := json.Unmarshal(body, &rs); err != nil {
			return rs, false, transient(fmt.Errorf("azuredns: zone %s, record %s: decode record set: %w", zone, rel, err))
		}
		return rs, true, nil
	case status == http.StatusNotFound && (aerr.Code == "" || aerr.Code == "NotFound"):
		// The record set does not exist yet. ARM answers a missing
		// zone with ParentResourceNotFound and a missing resource group
		// with ResourceGroupNotFound.
		return rs, false, nil
	}
	return rs, false, d.statusError(http.MethodGet, zone, rel, status, aerr)
}

// do sends a write and returns its status; a status outside ok is an error
// except 412, which the caller retries.
func (d *DNSProvider) do(ctx context.Context, method, u, zone, rel, etag string, rs *recordSet, ok ...int) (int, error) {
	var body []byte
	if rs != nil {
		var err error
		if body, err = json.Marshal(rs); err != nil {
			return 0, permanent(fmt.Errorf("azuredns: encode record set: %w", err))
		}
	}
	_, status, aerr, err := d.send(ctx, method, u, etag, body)
	if err != nil {
		return 0, d.wrap(err, method, zone, rel)
	}
	if slices.Contains(ok, status) || status == http.StatusPreconditionFailed {
		return status, nil
	}
	return status, d.statusError(method, zone, rel, status, aerr)
}

// armError is ARM's error body: {"error":{"code":..., "message":...}}.
type armError struct {
	Code       string
	Message    string
	RetryAfter string
}

// send performs one ARM request with a bearer token. etag "*new*" sends
// If-None-Match: * (create only); another non-empty etag sends If-Match.
func (d *DNSProvider) send(ctx context.Context, method, u, etag string, body []byte) ([]byte, int, armError, error) {
	tok, err := d.tokens.get(ctx)
	if err != nil {
		return nil, 0, armError{}, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, 0, armError{}, permanent(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch etag {
	case "":
	case "*new*":
		req.Header.Set("If-None-Match", "*")
	default:
		req.Header.Set("If-Match", etag)
	}
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, armError{}, transient(redactURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, 0, armError{}, transient(err)
	}
	var ae armError
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		ae = armError{Code: e.Error.Code, Message: firstLine(e.Error.Message), RetryAfter: resp.Header.Get("Retry-After")}
	}
	if resp.StatusCode == http.StatusUnauthorized {
		d.tokens.forget() // revoked or expired early: fetch a new one next time
	}
	return b, resp.StatusCode, ae, nil
}

// wrap names the operation on an error that carries no HTTP status.
func (d *DNSProvider) wrap(err error, method, zone, rel string) error {
	var ie *issuer.Error
	if errors.As(err, &ie) {
		return &issuer.Error{Class: ie.Class, At: ie.At, Err: fmt.Errorf("azuredns: %s zone %s, record %s: %w", method, zone, rel, ie.Err)}
	}
	return transient(fmt.Errorf("azuredns: %s zone %s, record %s: %w", method, zone, rel, err))
}

// statusError describes a refused ARM request and gives it its retry class.
func (d *DNSProvider) statusError(method, zone, rel string, status int, ae armError) error {
	msg := fmt.Sprintf("azuredns: %s zone %s, record %s: HTTP %d", method, zone, rel, status)
	if ae.Code != "" {
		msg += " " + ae.Code
	}
	if ae.Message != "" {
		msg += ": " + d.tokens.redact(ae.Message)
	}
	err := errors.New(msg)
	switch {
	case status == http.StatusTooManyRequests:
		return issuer.RetryAfter(d.now().Add(retryAfter(ae.RetryAfter, d.now())), err)
	case status >= 500:
		return transient(err)
	default:
		return permanent(err)
	}
}

// classifyStatus gives a token endpoint's refusal its retry class.
func classifyStatus(resp *http.Response, err error) error {
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		now := time.Now()
		return issuer.RetryAfter(now.Add(retryAfter(resp.Header.Get("Retry-After"), now)), err)
	case resp.StatusCode >= 500:
		return transient(err)
	default:
		return permanent(err)
	}
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP-date
// (RFC 9110 section 10.2.3).
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return defaultThrottleWait
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return defaultThrottleWait
}

func permanent(err error) error { return issuer.Permanent(err) }
func transient(err error) error { return issuer.Transient(err) }
