package history

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/storage/memory"
)

// TestHistoryGeneratedRepository checks every event of a generated
// repository against how it was generated: issues caused by the commit
// that added the specs, re-issues by the edit, renewals by the last edit
// of their spec, removals by the deletion.
func TestHistoryGeneratedRepository(t *testing.T) {
	repo, err := git.Init(memory.NewStorage(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := generate(t, repo, 60, 20)
	h, err := Read(context.Background(), repo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != want || h.Truncated {
		t.Fatalf("got %d events (truncated %v), want %d", len(h.Events), h.Truncated, want)
	}
	authors := []string{"Alice", "Bob", "Carol"}
	for _, e := range h.Events {
		if e.Cause == nil {
			t.Fatalf("%s %s at %s: no cause", e.Certificate, e.Reason, e.Commit[:8])
		}
		var wantAuthor string
		switch e.Reason {
		case "DoesNotExist":
			wantAuthor = "Alice"
		case "Deleted":
			wantAuthor = "Bob"
		case "SpecChanged":
			// The edit of round r is by authors[r%3]; its subject names r.
			var r int
			if _, err := fmtSscanf(e.Cause.Subject, &r); err != nil {
				t.Fatalf("%s: cause subject %q", e.Certificate, e.Cause.Subject)
			}
			wantAuthor = authors[r%3]
		default:
			continue // Renewing: checked below against SpecChanged events
		}
		if e.Cause.Author != wantAuthor {
			t.Errorf("%s %s: cause author %s, want %s", e.Certificate, e.Reason, e.Cause.Author, wantAuthor)
		}
	}
	// A renewal's cause is the last spec edit before it (or the seed).
	last := map[string]string{}
	for _, e := range h.Events {
		switch e.Reason {
		case "DoesNotExist", "SpecChanged":
			last[e.Certificate] = e.Cause.Commit
		case "Renewing":
			if e.Cause.Commit != last[e.Certificate] {
				t.Errorf("%s renewal at %s: cause %s, want %s", e.Certificate, e.Commit[:8], e.Cause.Commit[:8], last[e.Certificate][:8])
			}
		}
	}
	// One name: only its events, in the same order.
	one, err := Read(context.Background(), repo, Options{Name: certName(7)})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, e := range h.Events {
		if e.Certificate == certName(7) {
			if n >= len(one.Events) || one.Events[n].Commit != e.Commit || one.Events[n].Reason != e.Reason || *one.Events[n].Cause != *e.Cause {
				t.Fatalf("filtered event %d differs from the full read", n)
			}
			n++
		}
	}
	if n == 0 || n != len(one.Events) {
		t.Errorf("filtered read: %d events, want %d (>0)", len(one.Events), n)
	}
}

func fmtSscanf(subject string, r *int) (int, error) {
	return fmt.Sscanf(subject, "Edit three certificates (round %d)", r)
}
