package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"testing/synctest"
	"time"

	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/selfsigned"
	"certops.dev/certops/spec"
)

// recorder is a Notifier that keeps what it is sent; with gate set, each
// Notify waits for it to be closed.
type recorder struct {
	gate chan struct{}
	mu   sync.Mutex
	got  []Event
}

func (r *recorder) Notify(ctx context.Context, ev Event) error {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.got = append(r.got, ev)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Sink() string { return "recorder" }

func (r *recorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.got...)
}

// pushFails is a memSource whose pushes fail while fail is set.
type pushFails struct {
	*memSource
	fail bool
}

func (p *pushFails) Push(ctx context.Context) error {
	if p.fail {
		return errors.New("remote unreachable")
	}
	return p.memSource.Push(ctx)
}

const selfRepoIssuer = "apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: self}\nspec: {selfSigned: {}}\n"

const selfRepoCert = `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata: {name: web, namespace: web}
spec:
  dnsNames: [%s]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: self}
`

// closeAtEnd closes r when the test ends, so a failing test leaves no
// goroutine in its bubble.
func closeAtEnd(t *testing.T, r *Reconciler) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = r.Close(ctx)
	})
}

func selfFactories() map[string]IssuerFactory {
	return map[string]IssuerFactory{"selfSigned": func(context.Context, *spec.Issuer, IssuerEnv) (issuer.Issuer, error) {
		return selfsigned.New(selfsigned.NewDefaultConfig())
	}}
}

// TestNotifyOnlyPushedCommits: the events of a commit that could not be
// pushed wait; the pass that pushes it sends them, with that commit.
func TestNotifyOnlyPushedCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &pushFails{memSource: &memSource{commits: []fstest.MapFS{{
			"issuers/self.yaml":     {Data: []byte(selfRepoIssuer)},
			"certificates/web.yaml": {Data: []byte(fmt.Sprintf(selfRepoCert, "a.example.com"))},
		}}, pushed: 1}, fail: true}
		rec := &recorder{}
		var mu sync.Mutex
		outcomes := map[string]int{}
		r, err := New(Options{Source: src, Crypter: plainCrypter{}, Issuers: selfFactories(), Notify: []Notifier{rec},
			OnNotified: func(sink, result string) { mu.Lock(); outcomes[sink+"/"+result]++; mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		closeAtEnd(t, r)
		ctx := context.Background()
		rep := r.Pass(ctx, true)
		if rep.Error == "" || rep.Pushed != "" {
			t.Fatalf("pass with a failing push: error %q, pushed %q; want a push error", rep.Error, rep.Pushed)
		}
		synctest.Wait()
		if got := rec.events(); len(got) != 0 {
			t.Fatalf("events sent for an unpushed commit: %+v", got)
		}
		committed := src.head()

		src.fail = false
		rep = r.Pass(ctx, true)
		if rep.Error != "" {
			t.Fatalf("second pass: %s", rep.Error)
		}
		if err := r.Close(ctx); err != nil {
			t.Fatal(err)
		}
		got := rec.events()
		if len(got) != 1 {
			t.Fatalf("got %d events, want 1: %+v", len(got), got)
		}
		ev := got[0]
		if ev.Kind != EventIssued || ev.Certificate != "web/web" || ev.Commit != committed || ev.Serial == "" ||
			ev.NotAfter.IsZero() || ev.Issuer != "self" || ev.ID == "" || ev.Reason != spec.ReasonDoesNotExist {
			t.Errorf("event %+v; want Issued web/web in commit %s with serial, not-after, issuer and ID", ev, committed)
		}
		if !strings.Contains(ev.Message, ev.Serial) || !strings.Contains(ev.Message, ev.NotAfter.Format(time.RFC3339)) {
			t.Errorf("message %q lacks the serial or not-after", ev.Message)
		}
		if outcomes["recorder/sent"] != 1 || len(outcomes) != 1 {
			t.Errorf("outcomes %v; want recorder/sent once", outcomes)
		}

		// A spec change reissues: the next event says Reissued.
		r2, err := New(Options{Source: src, Crypter: plainCrypter{}, Issuers: selfFactories(), Notify: []Notifier{rec}})
		if err != nil {
			t.Fatal(err)
		}
		closeAtEnd(t, r2)
		src.edit(map[string]string{"certificates/web.yaml": fmt.Sprintf(selfRepoCert, "b.example.com")})
		if rep := r2.Pass(ctx, true); rep.Error != "" || rep.Pushed == "" {
			t.Fatalf("reissue pass: %q, pushed %q", rep.Error, rep.Pushed)
		}
		if err := r2.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if got := rec.events(); len(got) != 2 || got[1].Kind != EventReissued || got[1].Reason != spec.ReasonSpecChanged {
			t.Errorf("after a spec change: %+v; want a second event, Reissued (SpecChanged)", got)
		}
	})
}

// failingWith fails every request with the error its msg names.
type failingWith struct{ msg *string }

func (f failingWith) Sign(context.Context, *issuer.Request) (*issuer.Result, error) {
	return nil, issuer.Transient(errors.New(*f.msg))
}

// TestNotifyFailureRateLimited: a certificate failing the same way at the
// same backoff step notifies once; a new error or a new step notifies again.
func TestNotifyFailureRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &memSource{commits: []fstest.MapFS{{
			"issuers/broken.yaml":   {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: broken}\nspec: {exec: {command: [x]}}\n")},
			"certificates/web.yaml": {Data: []byte(fmt.Sprintf(failingRepoCert, "a.example.com"))},
		}}, pushed: 1}
		msg := "ca unavailable"
		rec := &recorder{}
		r, err := New(Options{Source: src, Crypter: plainCrypter{}, StateDir: t.TempDir(), Notify: []Notifier{rec},
			BackoffMin: time.Hour, BackoffMax: 2 * time.Hour,
			Issuers: map[string]IssuerFactory{"exec": func(context.Context, *spec.Issuer, IssuerEnv) (issuer.Issuer, error) {
				return failingWith{&msg}, nil
			}}})
		if err != nil {
			t.Fatal(err)
		}
		closeAtEnd(t, r)
		ctx := context.Background()
		attempt := func() {
			t.Helper()
			rep := r.Pass(ctx, true)
			if rep.Failed() != 1 {
				t.Fatalf("pass: %d failures, want 1 (%+v)", rep.Failed(), rep.Results)
			}
			// Waiting passes in between notify nothing.
			time.Sleep(time.Until(rep.Results[0].RetryAt) - time.Minute)
			if rep := r.Pass(ctx, true); !rep.Results[0].Waiting {
				t.Fatalf("retried early: %+v", rep.Results[0])
			}
			time.Sleep(time.Minute)
			synctest.Wait()
		}
		count := func() int { return len(rec.events()) }
		attempt() // 1h step: notified
		if count() != 1 {
			t.Fatalf("after the first failure: %d events, want 1", count())
		}
		attempt() // 2h step: notified
		attempt() // 2h again, same error: quiet
		attempt()
		if count() != 2 {
			t.Fatalf("same error at the cap: %d events, want 2: %+v", count(), rec.events())
		}
		msg = "ca refused: rate limited"
		attempt() // new error: notified
		if count() != 3 {
			t.Fatalf("after a new error: %d events, want 3", count())
		}
		// A restart remembers what was notified.
		r2, err := New(Options{Source: src, Crypter: plainCrypter{}, StateDir: r.o.StateDir, Notify: []Notifier{rec},
			BackoffMin: time.Hour, BackoffMax: 2 * time.Hour, Issuers: r.o.Issuers})
		if err != nil {
			t.Fatal(err)
		}
		closeAtEnd(t, r2)
		if rep := r2.Pass(ctx, true); rep.Failed() != 1 {
			t.Fatalf("after restart: %+v", rep.Results)
		}
		if err := errors.Join(r.Close(ctx), r2.Close(ctx)); err != nil {
			t.Fatal(err)
		}
		got := rec.events()
		if len(got) != 3 {
			t.Fatalf("after a restart, the same failure: %d events, want 3: %+v", len(got), got)
		}
		for _, ev := range got {
			if ev.Kind != EventFailed || ev.Certificate != "default/web" || ev.Error == "" || ev.RetryAt.IsZero() || ev.Commit != "" {
				t.Errorf("failure event %+v; want Failed default/web with error and retry time, no commit", ev)
			}
		}
		if got[2].Error != "ca refused: rate limited" || !strings.Contains(got[2].Message, "rate limited") {
			t.Errorf("third event %+v; want the new error", got[2])
		}
	})
}

// TestNotifySlowSinkDoesNotBlock: a sink that does not answer neither
// delays a pass nor grows without bound: its queue drops and counts; the
// other sink gets everything.
func TestNotifySlowSinkDoesNotBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &memSource{commits: []fstest.MapFS{{
			"issuers/self.yaml": {Data: []byte(selfRepoIssuer)},
		}}, pushed: 1}
		slow := &recorder{gate: make(chan struct{})}
		fast := &recorder{}
		var mu sync.Mutex
		outcomes := map[string]int{}
		r, err := New(Options{Source: src, Crypter: plainCrypter{}, Issuers: selfFactories(),
			Notify: []Notifier{slowSink{slow}, fast}, NotifyQueue: 1,
			OnNotified: func(sink, result string) { mu.Lock(); outcomes[sink+"/"+result]++; mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		closeAtEnd(t, r)
		ctx := context.Background()
		for i := range 4 {
			src.edit(map[string]string{fmt.Sprintf("certificates/c%d.yaml", i): strings.Replace(fmt.Sprintf(selfRepoCert, fmt.Sprintf("c%d.example.com", i)), "name: web", fmt.Sprintf("name: c%d", i), 1)})
			if rep := r.Pass(ctx, true); rep.Error != "" || rep.Pushed == "" {
				t.Fatalf("pass %d: %q, pushed %q", i, rep.Error, rep.Pushed)
			}
			synctest.Wait() // the fast sink has drained; the slow one is stuck
		}
		if n := len(fast.events()); n != 4 {
			t.Errorf("fast sink got %d events, want 4", n)
		}
		close(slow.gate)
		if err := r.Close(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		// One in flight, one queued; the other two dropped.
		if outcomes["slow/dropped"] != 2 || outcomes["slow/sent"] != 2 || outcomes["recorder/sent"] != 4 {
			t.Errorf("outcomes %v; want slow: 2 sent, 2 dropped; recorder: 4 sent", outcomes)
		}
	})
}

type slowSink struct{ *recorder }

func (slowSink) Sink() string { return "slow" }

// TestNotifyCloseGivesUp: Close waits for the queue only until its
// context ends, then cancels the sink and returns.
func TestNotifyCloseGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &memSource{commits: []fstest.MapFS{{
			"issuers/self.yaml":     {Data: []byte(selfRepoIssuer)},
			"certificates/web.yaml": {Data: []byte(fmt.Sprintf(selfRepoCert, "a.example.com"))},
		}}, pushed: 1}
		stuck := &recorder{gate: make(chan struct{})}
		r, err := New(Options{Source: src, Crypter: plainCrypter{}, Issuers: selfFactories(), Notify: []Notifier{stuck}})
		if err != nil {
			t.Fatal(err)
		}
		closeAtEnd(t, r)
		r.Pass(context.Background(), true)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with a stuck sink: %v; want DeadlineExceeded", err)
		}
		if n := len(stuck.events()); n != 0 {
			t.Errorf("stuck sink recorded %d events", n)
		}
	})
}

// TestNoNotifierKeepsNoEvents: without a Notifier, a pass that issues and
// one whose push fails keep no events: they would only be dropped at the
// end of the pass, after being held through it.
func TestNoNotifierKeepsNoEvents(t *testing.T) {
	src := &pushFails{memSource: &memSource{commits: []fstest.MapFS{{
		"issuers/self.yaml":     {Data: []byte(selfRepoIssuer)},
		"certificates/web.yaml": {Data: []byte(fmt.Sprintf(selfRepoCert, "a.example.com"))},
	}}, pushed: 1}, fail: true}
	r, err := New(Options{Source: src, Crypter: plainCrypter{}, Issuers: selfFactories()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	held := func() int {
		r.notify.mu.Lock()
		defer r.notify.mu.Unlock()
		return len(r.notify.held) + len(r.notify.ready)
	}
	var events int
	if rep := r.Pass(ctx, true); rep.Error == "" {
		t.Fatalf("pass with a failing push: no error")
	}
	events += held()
	src.fail = false
	if rep := r.Pass(ctx, true); rep.Error != "" {
		t.Fatalf("second pass: %s", rep.Error)
	}
	events += held()
	if events != 0 {
		t.Errorf("%d events kept without a Notifier", events)
	}
}
