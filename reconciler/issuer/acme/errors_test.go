package acme

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"certops.dev/certops/reconciler/issuer"
)

// A DNS provider's own class survives lego's wrapping (fmt %w inside a
// joined per-domain error); an unclassified provider error stays transient.
func TestClassifyKeepsProviderClass(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	lego := func(err error) error {
		return errors.Join(fmt.Errorf("dns01: error presenting token (a.example): %w", err))
	}
	tests := []struct {
		name   string
		err    error
		want   issuer.Class
		wantAt time.Time
	}{
		{"retry-after", lego(issuer.RetryAfter(at, errors.New("azuredns: HTTP 429"))), issuer.ClassRetryAfter, at},
		{"permanent", lego(issuer.Permanent(errors.New("azuredns: HTTP 403"))), issuer.ClassPermanent, time.Time{}},
		{"unclassified", lego(errors.New("route53: throttled")), issuer.ClassTransient, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err)
			if c := issuer.ClassOf(got); c != tt.want {
				t.Fatalf("class: got %s (%v), want %s", c, got, tt.want)
			}
			if gotAt, _ := issuer.RetryAt(got); !gotAt.Equal(tt.wantAt) {
				t.Errorf("retry at: got %v, want %v", gotAt, tt.wantAt)
			}
		})
	}
}
