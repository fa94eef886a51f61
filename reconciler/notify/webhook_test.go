package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"certops.dev/certops/reconciler"
)

// receiver is a real local HTTP server answering with the given statuses
// in turn (200 when they run out) and keeping what it got.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	headers  []http.Header
	bodies   [][]byte
}

func newReceiver(t *testing.T, retryAfter string, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.headers = append(r.headers, req.Header.Clone())
		r.bodies = append(r.bodies, b)
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		if retryAfter != "" && (status >= 500 || status == 429) {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

var testEvent = reconciler.Event{ID: "abc123", Kind: reconciler.EventIssued, Certificate: "web/web", Reason: "DoesNotExist",
	Message: "issued web/web (DoesNotExist): serial 1f, not after 2027-01-01T00:00:00Z, issuer ca", Serial: "1f",
	NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), Issuer: "ca", Commit: "0123456789abcdef",
	Targets: []reconciler.EventTarget{{Cluster: "prod", Namespace: "web", SecretName: "web-tls"}},
	Time:    time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}

func newTestWebhook(t *testing.T, url string, sleeps *[]time.Duration) *Webhook {
	t.Helper()
	cfg := NewDefaultConfig()
	cfg.URL, cfg.Secret = url, []byte("shh-webhook-secret")
	cfg.sleep = func(_ context.Context, d time.Duration) error { *sleeps = append(*sleeps, d); return nil }
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestNotifyWebhookSignedPayload(t *testing.T) {
	rcv := newReceiver(t, "")
	var sleeps []time.Duration
	w := newTestWebhook(t, rcv.URL+"/hook", &sleeps)
	if err := w.Notify(context.Background(), testEvent); err != nil {
		t.Fatal(err)
	}
	if rcv.count() != 1 {
		t.Fatalf("receiver got %d requests, want 1", rcv.count())
	}
	body, h := rcv.bodies[0], rcv.headers[0]
	if !Verify([]byte("shh-webhook-secret"), body, h.Get(HeaderSignature)) {
		t.Errorf("signature %q does not verify over the body", h.Get(HeaderSignature))
	}
	if Verify([]byte("another secret"), body, h.Get(HeaderSignature)) {
		t.Errorf("signature verifies with the wrong secret")
	}
	if got := h.Get(HeaderDelivery); got != "abc123" {
		t.Errorf("delivery header %q, want the event ID", got)
	}
	if got := h.Get(HeaderTimestamp); got != "1796083200" {
		t.Errorf("timestamp header %q, want 1796083200", got)
	}
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"kind": "Issued", "certificate": "web/web", "serial": "1f", "commit": "0123456789abcdef",
		"notAfter": "2027-01-01T00:00:00Z", "text": "certops: " + testEvent.Message} {
		if p[k] != want {
			t.Errorf("payload %s = %v, want %v", k, p[k], want)
		}
	}
	if strings.Contains(string(body), "PRIVATE KEY") || strings.Contains(string(body), "shh-webhook-secret") {
		t.Errorf("payload holds key material or the secret: %s", body)
	}
}

func TestNotifyWebhookRetries(t *testing.T) {
	for _, tc := range []struct {
		name       string
		statuses   []int
		retryAfter string
		wantReqs   int
		wantErr    bool
		wantSleeps []time.Duration
	}{
		{"500 then 200", []int{500}, "", 2, false, []time.Duration{time.Second}},
		{"429 with Retry-After", []int{429}, "7", 2, false, []time.Duration{7 * time.Second}},
		{"Retry-After capped", []int{503}, "86400", 2, false, []time.Duration{DefaultMaxRetryAfter}},
		{"400 not retried", []int{400}, "", 1, true, nil},
		{"gives up", []int{500, 502, 503, 500, 500, 500}, "", DefaultAttempts, true,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t, tc.retryAfter, tc.statuses...)
			var sleeps []time.Duration
			w := newTestWebhook(t, rcv.URL, &sleeps)
			err := w.Notify(context.Background(), testEvent)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Notify: %v, want error %v", err, tc.wantErr)
			}
			if rcv.count() != tc.wantReqs {
				t.Errorf("receiver got %d requests, want %d", rcv.count(), tc.wantReqs)
			}
			if len(sleeps) != len(tc.wantSleeps) {
				t.Fatalf("waits %v, want %v", sleeps, tc.wantSleeps)
			}
			for i := range sleeps {
				if sleeps[i] != tc.wantSleeps[i] {
					t.Errorf("waits %v, want %v", sleeps, tc.wantSleeps)
				}
			}
			// Every attempt carries the same body and delivery ID.
			for i := 1; i < rcv.count(); i++ {
				if string(rcv.bodies[i]) != string(rcv.bodies[0]) || rcv.headers[i].Get(HeaderDelivery) != "abc123" {
					t.Errorf("attempt %d differs from the first", i+1)
				}
			}
		})
	}
}

// TestNotifyWebhookRedactsURL: the URL's credentials and query never reach
// an error.
func TestNotifyWebhookRedactsURL(t *testing.T) {
	rcv := newReceiver(t, "")
	addr := strings.TrimPrefix(rcv.URL, "http://")
	rcv.Close() // nothing listens there now: a network error
	var sleeps []time.Duration
	w := newTestWebhook(t, "http://user:hunter2@"+addr+"/hook?token=t0ps3cret", &sleeps)
	err := w.Notify(context.Background(), testEvent)
	if err == nil {
		t.Fatal("Notify to a closed port succeeded")
	}
	if len(sleeps) != DefaultAttempts-1 {
		t.Errorf("network errors retried %d times, want %d", len(sleeps), DefaultAttempts-1)
	}
	for _, secret := range []string{"hunter2", "t0ps3cret", "user:"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q reveals %q", err, secret)
		}
	}
	if !strings.Contains(err.Error(), addr+"/hook") {
		t.Errorf("error %q does not name the receiver", err)
	}
	if _, err := New(Config{URL: "ftp://user:pw@x/?k=v", Secret: []byte("s")}); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("bad URL: %v; want an error without the password", err)
	}
	if _, err := New(Config{URL: "https://x/"}); err == nil {
		t.Errorf("no secret accepted")
	}
}
