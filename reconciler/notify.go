package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"certops.dev/certops/spec"
)

// EventKind is what happened to a certificate.
type EventKind string

const (
	EventIssued   EventKind = "Issued"   // first issuance
	EventRenewed  EventKind = "Renewed"  // same request, renewed in time (or forced)
	EventReissued EventKind = "Reissued" // the spec or the issuer changed
	EventFailed   EventKind = "Failed"   // issuance failed; see Error and RetryAt
	EventRemoved  EventKind = "Removed"  // the spec is gone; so is its Secret file
)

// Event is one notification about one certificate. It carries only what
// the commit trailers and the Secret's clear-text annotations carry: never
// key material, tokens or credentials.
type Event struct {
	// ID identifies the event: the same event delivered twice (retries)
	// has the same ID, so receivers can drop duplicates.
	ID          string      `json:"id"`
	Kind        EventKind   `json:"kind"`
	Certificate string      `json:"certificate"` // namespace/name
	Reason      spec.Reason `json:"reason,omitempty"`
	Message     string      `json:"message"`
	Serial      string      `json:"serial,omitempty"`
	NotBefore   time.Time   `json:"notBefore,omitzero"`
	NotAfter    time.Time   `json:"notAfter,omitzero"`
	RenewAt     time.Time   `json:"renewAt,omitzero"`
	Issuer      string      `json:"issuer,omitempty"`
	// Commit is the pushed commit that records the issuance or removal;
	// empty for Failed.
	Commit  string        `json:"commit,omitempty"`
	Targets []EventTarget `json:"targets,omitempty"`
	Error   string        `json:"error,omitempty"`
	RetryAt time.Time     `json:"retryAt,omitzero"` // Failed: zero when it waits for a spec change
	Time    time.Time     `json:"time"`
}

// EventTarget is one Secret the certificate is applied as.
type EventTarget struct {
	Cluster    string `json:"cluster"`
	Namespace  string `json:"namespace"`
	SecretName string `json:"secretName"`
}

// Notifier receives events. Notify may block (a webhook retries); the
// Reconciler calls each Notifier from its own goroutine, one event at a
// time, so a slow one delays neither the pass nor the other Notifiers. An
// error is counted and logged by the Reconciler; the event is not resent.
type Notifier interface {
	Notify(ctx context.Context, ev Event) error
}

// Sink is the optional capability of a Notifier to name itself in logs and
// in the metric's sink label (default: "notifier-<index>").
type Sink interface {
	Sink() string
}

// Notification results passed to Options.OnNotified.
const (
	NotifySent    = "sent"
	NotifyFailed  = "failed"
	NotifyDropped = "dropped" // the sink's queue was full
)

// DefaultNotifyQueue is how many events wait per Notifier before new ones
// are dropped: a pass over a whole repository of certificates fits, a
// receiver that is down for days does not grow the daemon's memory.
const DefaultNotifyQueue = 1024

// notifySink is one Notifier with its queue and the goroutine draining it.
type notifySink struct {
	name  string
	n     Notifier
	queue chan Event
}

// notifier owns the sinks' goroutines and the events held back for a
// commit not pushed yet.
type notifier struct {
	r      *Reconciler
	sinks  []*notifySink
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started bool
	closed  bool
	held    []Event // of a commit not pushed yet
	ready   []Event // to send at the end of the pass
}

func newNotifier(r *Reconciler, ns []Notifier, size int) *notifier {
	if size <= 0 {
		size = DefaultNotifyQueue
	}
	n := &notifier{r: r}
	for i, x := range ns {
		name := fmt.Sprintf("notifier-%d", i)
		if s, ok := x.(Sink); ok {
			name = s.Sink()
		}
		n.sinks = append(n.sinks, &notifySink{name: name, n: x, queue: make(chan Event, size)})
	}
	return n
}

// send queues events for every sink, starting the sinks' goroutines on
// first use. It never blocks: a full queue drops the event and counts it.
func (n *notifier) send(events []Event) {
	if len(n.sinks) == 0 || len(events) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if !n.started {
		n.started = true
		n.ctx, n.cancel = context.WithCancel(context.Background())
		for _, s := range n.sinks {
			n.wg.Go(func() { n.drain(s) })
		}
	}
	for _, ev := range events {
		for _, s := range n.sinks {
			select {
			case s.queue <- ev:
			default:
				n.r.log.Warn("notification dropped: queue full", "sink", s.name, "cert", ev.Certificate, "kind", string(ev.Kind))
				n.result(s.name, NotifyDropped)
			}
		}
	}
}

func (n *notifier) drain(s *notifySink) {
	for ev := range s.queue {
		if n.ctx.Err() != nil {
			n.result(s.name, NotifyDropped)
			continue
		}
		if err := s.n.Notify(n.ctx, ev); err != nil {
			n.r.log.Error("notification failed", "sink", s.name, "cert", ev.Certificate, "kind", string(ev.Kind), "error", err)
			n.result(s.name, NotifyFailed)
			continue
		}
		n.result(s.name, NotifySent)
	}
}

func (n *notifier) result(sink, result string) {
	if f := n.r.o.OnNotified; f != nil {
		f(sink, result)
	}
}

// close stops taking events and lets the queues drain until ctx ends;
// then it cancels what is in flight and waits for the goroutines.
func (n *notifier) close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	started := n.started
	if started {
		for _, s := range n.sinks {
			close(s.queue)
		}
	}
	n.mu.Unlock()
	if !started {
		return nil
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("reconciler: notifications not delivered before shutdown: %w", ctx.Err())
	}
	n.cancel()
	<-done
	return err
}

// enabled reports whether any Notifier is configured. Without one, events
// are not built or kept: a pass of 10,000 issuances would hold 10,000 of
// them until its end for nothing.
func (n *notifier) enabled() bool { return len(n.sinks) > 0 }

// hold keeps the events of a commit that is not pushed yet.
func (n *notifier) hold(events []Event) {
	if !n.enabled() {
		return
	}
	n.mu.Lock()
	n.held = append(n.held, events...)
	n.mu.Unlock()
}

// pushed moves the held events to the ready ones: their commit was pushed.
func (n *notifier) pushed() {
	n.mu.Lock()
	n.ready = append(n.ready, n.held...)
	n.held = nil
	n.mu.Unlock()
}

// add makes events ready to send at the end of the pass.
func (n *notifier) add(events ...Event) {
	if !n.enabled() {
		return
	}
	n.mu.Lock()
	n.ready = append(n.ready, events...)
	n.mu.Unlock()
}

// flush sends the ready events. It runs at the end of a pass, after the
// apply step, so an event never names a Secret before it was applied.
func (n *notifier) flush() {
	n.mu.Lock()
	ready := n.ready
	n.ready = nil
	n.mu.Unlock()
	for i := range ready {
		if ready[i].ID == "" {
			ready[i].ID = eventID(ready[i])
		}
	}
	n.send(ready)
}

// Close delivers the notifications still queued, waiting until ctx ends,
// and stops the Notifiers' goroutines. Call it once, after the last Pass.
// Events held for a commit that was never pushed are not sent.
func (r *Reconciler) Close(ctx context.Context) error {
	return r.notify.close(ctx)
}

// committedEvent is the event for a certificate written in this pass'
// commit; its Commit is set once the commit exists.
func (p *pass) committedEvent(it *issued) Event {
	c := it.cert
	kind := EventRenewed
	switch actionWord(it.reason) {
	case "issue":
		kind = EventIssued
	case "reissue":
		kind = EventReissued
	}
	serial := it.leaf.serial
	return Event{Kind: kind, Certificate: c.Key(), Reason: it.reason, Serial: serial,
		NotBefore: it.leaf.notBefore.UTC(), NotAfter: it.leaf.notAfter.UTC(), RenewAt: it.renewAt.UTC(),
		Issuer:  c.Spec.IssuerRef.Name,
		Targets: eventTargets(c.ResolvedTargets(&p.repo.Config)),
		Message: fmt.Sprintf("%s %s (%s): serial %s, not after %s, issuer %s", strings.ToLower(string(kind)), c.Key(), it.reason,
			serial, it.leaf.notAfter.UTC().Format(time.RFC3339), c.Spec.IssuerRef.Name),
		Time: p.now.UTC()}
}

// removedEvent is the event for a certificate whose spec is gone.
func (p *pass) removedEvent(e spec.PlanEntry) Event {
	return Event{Kind: EventRemoved, Certificate: e.Name, Reason: spec.ReasonDeleted, Issuer: e.Issuer,
		Message: fmt.Sprintf("removed %s: its spec is gone", e.Name), Time: p.now.UTC()}
}

func eventTargets(ts []spec.ResolvedTarget) []EventTarget {
	out := make([]EventTarget, len(ts))
	for i, t := range ts {
		out[i] = EventTarget{Cluster: t.Cluster, Namespace: t.Namespace, SecretName: t.SecretName}
	}
	return out
}

// failureEvents adds a Failed event for each certificate that failed in
// this pass — unless the same error at the same backoff step was already
// reported, so a certificate failing at the 32h cap, or the same way after
// a restart, does not notify every attempt.
func (p *pass) failureEvents() {
	r := p.r
	for _, res := range p.rep.Results {
		if res.Error == "" || res.Waiting {
			continue
		}
		st := r.state[res.Name]
		if st == nil {
			continue
		}
		step := "permanent"
		if !st.Permanent {
			step = backoffAfter(st.Failures, r.o.BackoffMin, r.o.BackoffMax).String()
		}
		sum := sha256.Sum256([]byte(st.Fingerprint + "\x00" + st.LastError + "\x00" + step))
		sig := hex.EncodeToString(sum[:8])
		if st.Notified == sig {
			continue
		}
		st.Notified = sig
		var targets []EventTarget
		if c := p.repo.Certificate(res.Name); c != nil {
			targets = eventTargets(c.ResolvedTargets(&p.repo.Config))
		}
		msg := fmt.Sprintf("issuing %s failed (%s): %s", res.Name, res.Reason, res.Error)
		if res.RetryAt.IsZero() {
			msg += "; retried after a change of the spec or the issuer"
		} else {
			msg += "; retry at " + res.RetryAt.UTC().Format(time.RFC3339)
		}
		r.notify.add(Event{Kind: EventFailed, Certificate: res.Name, Reason: res.Reason, Issuer: res.Issuer,
			Error: res.Error, RetryAt: res.RetryAt.UTC(), Targets: targets, Message: msg, Time: p.now.UTC()})
	}
}

// eventID is stable for one event, whatever the delivery attempt.
func eventID(ev Event) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s", ev.Kind, ev.Certificate, ev.Serial, ev.Commit, ev.Error, ev.Time.Format(time.RFC3339Nano))
	return hex.EncodeToString(h.Sum(nil))[:24]
}
