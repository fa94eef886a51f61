package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"certops.dev/certops/reconciler"
)

// Headers of every delivery.
const (
	HeaderSignature = "X-Certops-Signature" // sha256=<hex of HMAC-SHA256(secret, body)>
	HeaderDelivery  = "X-Certops-Delivery"  // the event's ID, the same on every attempt
	HeaderTimestamp = "X-Certops-Timestamp" // the event's time, Unix seconds (also in the signed body)
	HeaderEvent     = "X-Certops-Event"     // the event's kind
)

// Retry bounds. Five attempts over about 15 s ride out a receiver's restart
// without holding the sink's queue for long; a Retry-After longer than
// MaxRetryAfter is capped to it, as Flux's notification-controller caps its
// retries, so one receiver cannot park the queue for hours.
const (
	DefaultAttempts      = 5
	DefaultBackoffBase   = time.Second
	DefaultMaxRetryAfter = 5 * time.Minute
	DefaultTimeout       = 15 * time.Second
)

// Config configures a Webhook.
type Config struct {
	URL    string
	Secret []byte // HMAC key; required
	// Client sends the requests (default: a client with Timeout per attempt).
	Client        *http.Client
	Attempts      int
	BackoffBase   time.Duration // waits BackoffBase, 2×, 4×, … between attempts
	MaxRetryAfter time.Duration
	Logger        *slog.Logger

	sleep func(ctx context.Context, d time.Duration) error // tests
}

// NewDefaultConfig returns a Config with the default bounds.
func NewDefaultConfig() Config {
	return Config{Attempts: DefaultAttempts, BackoffBase: DefaultBackoffBase, MaxRetryAfter: DefaultMaxRetryAfter}
}

// Webhook is a reconciler.Notifier that POSTs each event as JSON.
type Webhook struct {
	cfg    Config
	url    string
	shown  string // the URL with userinfo and query redacted
	client *http.Client
	log    *slog.Logger
}

var _ reconciler.Notifier = (*Webhook)(nil)

// New validates cfg eagerly.
func New(cfg Config) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("notify: webhook URL %q: want http(s)://host/path", Redact(cfg.URL))
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("notify: webhook: a signing secret is required")
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = DefaultBackoffBase
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.sleep == nil {
		cfg.sleep = sleep
	}
	w := &Webhook{cfg: cfg, url: cfg.URL, shown: Redact(cfg.URL), client: cfg.Client, log: cfg.Logger}
	if w.client == nil {
		w.client = &http.Client{Timeout: DefaultTimeout}
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w, nil
}

// Sink names the webhook in metrics.
func (w *Webhook) Sink() string { return "webhook" }

// Payload is the JSON body: the event, plus a one-line text for Slack-like
// receivers that show a "text" field.
type Payload struct {
	reconciler.Event
	Text string `json:"text"`
}

// Sign returns the X-Certops-Signature value of body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a signature header against body in constant time.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, body)))
}

// Notify delivers one event, retrying as the package doc says.
func (w *Webhook) Notify(ctx context.Context, ev reconciler.Event) error {
	body, err := json.Marshal(Payload{Event: ev, Text: "certops: " + ev.Message})
	if err != nil {
		return fmt.Errorf("notify: webhook %s: encoding event: %w", w.shown, err)
	}
	sig := Sign(w.cfg.Secret, body)
	var last error
	for attempt := 1; ; attempt++ {
		wait, err := w.post(ctx, ev, body, sig)
		if err == nil {
			return nil
		}
		last = err
		var perm *permanentError
		if errors.As(err, &perm) || attempt >= w.cfg.Attempts || ctx.Err() != nil {
			break
		}
		if wait <= 0 {
			wait = w.cfg.BackoffBase << (attempt - 1)
		}
		wait = min(wait, w.cfg.MaxRetryAfter)
		w.log.Warn("webhook delivery failed; retrying", "url", w.shown, "cert", ev.Certificate, "attempt", attempt, "retry_in", wait, "error", err)
		if err := w.cfg.sleep(ctx, wait); err != nil {
			last = errors.Join(last, err)
			break
		}
	}
	return fmt.Errorf("notify: webhook %s: giving up on event %s: %w", w.shown, ev.ID, last)
}

// permanentError is a delivery that retrying cannot fix: the receiver
// refused it (status), or the request could not be built (err).
type permanentError struct {
	status int
	err    error
}

func (e *permanentError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("receiver answered %d %s (not retried)", e.status, http.StatusText(e.status))
}

func (e *permanentError) Unwrap() error { return e.err }

// post makes one attempt. It returns the wait the receiver asked for
// (Retry-After) with a retryable error.
func (w *Webhook) post(ctx context.Context, ev reconciler.Event, body []byte, sig string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, &permanentError{err: errors.New("building the request failed")} // its error quotes the URL
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "certops")
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set(HeaderDelivery, ev.ID)
	req.Header.Set(HeaderEvent, string(ev.Kind))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ev.Time.Unix(), 10))
	resp, err := w.client.Do(req)
	if err != nil {
		// url.Error quotes the URL with its credentials: keep only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, fmt.Errorf("post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return retryAfter(resp.Header.Get("Retry-After"), time.Now()), fmt.Errorf("receiver answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	default:
		return 0, &permanentError{status: resp.StatusCode}
	}
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Redact returns a URL fit for logs: no userinfo, no query, no fragment.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	u.Fragment = ""
	return u.String()
}
