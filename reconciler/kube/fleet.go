package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff bounds for a cluster that is unreachable or forbids certops'
// requests. The first retry comes soon enough that an apiserver restart
// (seconds to a minute) is picked up within a poll or two; the cap keeps a
// cluster that is down for hours to about a dozen attempts an hour. Jitter
// of ±20% keeps daemons that share a cluster from retrying in step.
const (
	BackoffBase = 5 * time.Second
	BackoffMax  = 5 * time.Minute
)

// Backoff is the wait before retry number failures (1 for the first) of a
// cluster, jittered with r.
func Backoff(failures int, r *rand.Rand) time.Duration {
	if failures < 1 {
		return 0
	}
	d := BackoffBase
	for i := 1; i < failures && d < BackoffMax; i++ {
		d *= 2
	}
	d = min(d, BackoffMax)
	return time.Duration(float64(d) * (0.8 + 0.4*r.Float64()))
}

// Fleet applies to many clusters at once. It remembers, per cluster, the
// failures that call for a backoff and skips a cluster until its retry time.
// It is safe for concurrent use; Apply calls are serialised.
type Fleet struct {
	// Now and Rand are the clock and the jitter source; tests replace them.
	Now  func() time.Time
	Rand *rand.Rand
	// Timeout bounds one cluster's part of a pass (default 2 minutes), so
	// an apiserver that accepts connections but never answers does not
	// hold up the report.
	Timeout time.Duration
	Logger  *slog.Logger

	clusters []*Cluster
	mu       sync.Mutex
	state    map[string]*retryState
}

type retryState struct {
	failures int
	retryAt  time.Time
	lastErr  error
}

// NewFleet groups clusters; their names must differ.
func NewFleet(clusters ...*Cluster) (*Fleet, error) {
	seen := map[string]bool{}
	for _, c := range clusters {
		if seen[c.Name()] {
			return nil, fmt.Errorf("kube: fleet: cluster %s named twice: %w", c.Name(), ErrInvalid)
		}
		seen[c.Name()] = true
	}
	return &Fleet{
		Now:      time.Now,
		Rand:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		Timeout:  2 * time.Minute,
		clusters: clusters,
		state:    map[string]*retryState{},
	}, nil
}

// Pass is what one Fleet.Apply wants: per cluster name, its Secrets.
type Pass struct {
	Desired map[string][]Desired
	// Prune deletes, in clusters whose configuration allows it, certops'
	// Secrets not in Desired — but only after that cluster's Apply reached
	// every namespace.
	Prune bool
}

// ClusterOutcome is one cluster's part of a pass.
type ClusterOutcome struct {
	Apply Report
	Prune Report
	// Err joins the cluster's failures (see Cluster.Apply and Prune).
	Err error
	// Deferred: the cluster was not contacted because it is backing off
	// after an earlier failure; Err is that failure.
	Deferred bool
	// RetryAt is when a failed or deferred cluster is tried again; zero
	// when it converged.
	RetryAt time.Time
}

// FleetReport is what one Fleet.Apply did.
type FleetReport struct {
	Clusters map[string]ClusterOutcome
	// NextRetry is the earliest RetryAt, zero when no cluster waits.
	NextRetry time.Time
}

// Err joins every cluster's error.
func (r FleetReport) Err() error {
	var errs []error
	for _, o := range r.Clusters {
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
	}
	return errors.Join(errs...)
}

// Apply runs one pass on every cluster in parallel. A cluster that is
// unreachable or forbidden (ErrUnreachable, ErrForbidden) backs off; the
// others are not delayed by it. Clusters absent from p.Desired get an empty
// list (which, with p.Prune, removes all of certops' Secrets there).
func (f *Fleet) Apply(ctx context.Context, p Pass) FleetReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	log := f.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := f.Now()
	out := FleetReport{Clusters: make(map[string]ClusterOutcome, len(f.clusters))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range f.clusters {
		st := f.state[c.Name()]
		if st != nil && now.Before(st.retryAt) {
			mu.Lock()
			out.Clusters[c.Name()] = ClusterOutcome{Deferred: true, Err: st.lastErr, RetryAt: st.retryAt}
			mu.Unlock()
			continue
		}
		wg.Go(func() {
			o := f.applyCluster(ctx, c, p)
			mu.Lock()
			out.Clusters[c.Name()] = o
			mu.Unlock()
		})
	}
	wg.Wait()

	for _, c := range f.clusters {
		o := out.Clusters[c.Name()]
		if o.Deferred {
			continue
		}
		if backsOff(o) {
			st := f.state[c.Name()]
			if st == nil {
				st = &retryState{}
				f.state[c.Name()] = st
			}
			st.failures++
			st.retryAt = now.Add(Backoff(st.failures, f.Rand))
			st.lastErr = o.Err
			o.RetryAt = st.retryAt
			out.Clusters[c.Name()] = o
			log.Error("cluster failed; backing off", "cluster", c.Name(), "retry_at", st.retryAt, "failures", st.failures, "err", o.Err)
		} else {
			delete(f.state, c.Name())
			if o.Err != nil {
				log.Error("cluster pass had failures", "cluster", c.Name(), "err", o.Err)
			}
		}
	}
	for _, o := range out.Clusters {
		if !o.RetryAt.IsZero() && (out.NextRetry.IsZero() || o.RetryAt.Before(out.NextRetry)) {
			out.NextRetry = o.RetryAt
		}
	}
	return out
}

func (f *Fleet) applyCluster(ctx context.Context, c *Cluster, p Pass) ClusterOutcome {
	if f.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.Timeout)
		defer cancel()
	}
	desired := p.Desired[c.Name()]
	var o ClusterOutcome
	o.Apply, o.Err = c.Apply(ctx, desired)
	if !p.Prune {
		return o
	}
	// Prune only when every namespace was listed: a cluster that failed
	// half-way says nothing reliable about what is orphaned.
	var clusterErr *ClusterError
	if errors.As(o.Err, &clusterErr) && clusterErr.Op == "list secrets" {
		return o
	}
	keep := make(map[Key]bool, len(desired))
	for _, d := range desired {
		keep[d.Key()] = true
	}
	var perr error
	o.Prune, perr = c.Prune(ctx, keep)
	o.Err = errors.Join(o.Err, perr)
	return o
}

// backsOff: the cluster as a whole failed for a reason that waiting may
// cure, and made no progress at all. One forbidden namespace among working
// ones is reported each pass but does not hold the others back.
func backsOff(o ClusterOutcome) bool {
	if !errors.Is(o.Err, ErrUnreachable) && !errors.Is(o.Err, ErrForbidden) {
		return false
	}
	for _, r := range o.Apply.Results {
		if r.Outcome != Failed {
			return false
		}
	}
	return true
}
