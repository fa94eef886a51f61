package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/reconciler"
	"certops.dev/certops/spec"
)

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// errLeaseLost ends the daemon when another replica took the Lease while
// this one still ran: like controller-runtime's managers, it exits non-zero
// so that the pod restarts as a follower with a clean state.
var errLeaseLost = errors.New("leader election: lost the lease")

// leaderFlags configure leader election among replicas of `certops run`.
type leaderFlags struct {
	enabled       bool
	namespace     string
	name          string
	kubeconfig    string
	leaseDuration time.Duration
	renewDeadline time.Duration
	retryPeriod   time.Duration
}

// register adds the flags. The durations are controller-runtime's defaults
// (pkg/manager: 15s lease, 10s renew deadline, 2s retry period).
func (l *leaderFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&l.enabled, "leader-elect", false, "take a Kubernetes Lease so that only one replica issues, commits and pushes; the others serve a read-only status")
	fs.StringVar(&l.namespace, "leader-elect-namespace", "", "namespace of the Lease (default: the pod's namespace, else \"default\")")
	fs.StringVar(&l.name, "leader-elect-name", "certops", "name of the Lease")
	fs.StringVar(&l.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster holding the Lease (default: in-cluster)")
	fs.DurationVar(&l.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long followers wait before taking a lease its holder stopped renewing")
	fs.DurationVar(&l.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader retries renewing before it gives up the lead")
	fs.DurationVar(&l.retryPeriod, "leader-elect-retry-period", 2*time.Second, "how often replicas try to take or renew the lease")
}

// leaseNamespace is --leader-elect-namespace, else the pod's namespace,
// else "default".
func (l *leaderFlags) leaseNamespace(readFile func(string) ([]byte, error)) string {
	if l.namespace != "" {
		return l.namespace
	}
	if b, err := readFile(serviceAccountNamespace); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "default"
}

// election is this replica's part in leader election. Its methods are safe
// for concurrent use.
type election struct {
	elector  *leaderelection.LeaderElector
	identity string
	log      *slog.Logger
	// offline reads the status from the repository without writing
	// anything: what a follower serves.
	offline func(ctx context.Context) (reconciler.Status, error)
	gauge   prometheus.Gauge

	mu      sync.Mutex
	leading context.Context // non-nil while this replica holds the Lease
	status  *reconciler.Status
	changed chan struct{} // one token when the lead was taken or given up
}

// newElection builds the elector; it does not contact the cluster.
func (l *leaderFlags) newElection(log *slog.Logger, offline func(context.Context) (reconciler.Status, error)) (*election, error) {
	var cfg *rest.Config
	var err error
	if l.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", l.kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("--leader-elect: cluster config: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	// One hung request must not cost the lead: client-go's
	// NewFromKubeconfig bounds each call to half the renew deadline.
	cfg.Timeout = max(time.Second, l.renewDeadline/2)
	cfg = rest.AddUserAgent(cfg, "certops-leader-election")
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--leader-elect: %w", err)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "certops"
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	e := &election{
		identity: host + "_" + hex.EncodeToString(suffix),
		log:      log,
		offline:  offline,
		gauge:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "certops_leader", Help: "1 while this replica holds the leader Lease (or runs without leader election), else 0."}),
		changed:  make(chan struct{}, 1),
	}
	ns := l.leaseNamespace(os.ReadFile)
	e.elector, err = leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: l.name},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: e.identity},
		},
		LeaseDuration:   l.leaseDuration,
		RenewDeadline:   l.renewDeadline,
		RetryPeriod:     l.retryPeriod,
		ReleaseOnCancel: true,
		Name:            ns + "/" + l.name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: e.started,
			OnStoppedLeading: e.stopped,
			OnNewLeader: func(id string) {
				if id != e.identity {
					log.Info("following", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("--leader-elect: %w", err)
	}
	log.Info("leader election", "lease", ns+"/"+l.name, "identity", e.identity)
	return e, nil
}

func (e *election) started(ctx context.Context) {
	e.mu.Lock()
	e.leading = ctx
	e.mu.Unlock()
	e.gauge.Set(1)
	e.log.Info("leading", "identity", e.identity)
	e.kick()
}

func (e *election) stopped() {
	e.mu.Lock()
	was := e.leading != nil
	e.leading = nil
	e.mu.Unlock()
	e.gauge.Set(0)
	if was {
		e.log.Info("stopped leading", "identity", e.identity)
	}
	e.kick()
}

func (e *election) kick() {
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// run takes part in the election until ctx ends (the Lease is released) or
// the lead is lost; it reports errLeaseLost for the latter.
func (e *election) run(ctx context.Context) error {
	e.elector.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return errLeaseLost
}

// refresh re-reads the follower's status from the repository.
func (e *election) refresh(ctx context.Context) {
	st, err := e.offline(ctx)
	if err != nil {
		e.log.Warn("reading the repository as a follower", "error", err)
		st.Error = err.Error()
		e.mu.Lock()
		if e.status != nil { // keep the last good view, with the error
			prev := *e.status
			prev.Error = st.Error
			st = prev
		}
		e.mu.Unlock()
	}
	e.mu.Lock()
	e.status = &st
	e.mu.Unlock()
}

// followerStatus is the last status refresh read.
func (e *election) followerStatus() reconciler.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.status == nil {
		return reconciler.Status{Certificates: []reconciler.CertificateStatus{}}
	}
	return *e.status
}

// offlineReader reads the repository the way `certops status` does
// offline: the specs and the clear-text metadata of the encrypted files,
// decrypting nothing. It fetches only when the branch moved, and never
// commits or pushes.
func offlineReader(repo *gitsource.Repo, policy *spec.Policy) func(context.Context) (reconciler.Status, error) {
	synced := false
	return func(ctx context.Context) (reconciler.Status, error) {
		_, changed, err := repo.Poll(ctx)
		if err != nil {
			return reconciler.Status{}, err
		}
		var commit string
		if changed || !synced {
			if commit, err = repo.Sync(ctx); err != nil {
				return reconciler.Status{}, err
			}
			synced = true
		} else if commit, err = repo.Head(); err != nil {
			return reconciler.Status{}, err
		}
		fsys, err := repo.Files(commit)
		if err != nil {
			return reconciler.Status{}, err
		}
		r := spec.Load(fsys, spec.LoadOptions{ExternalPolicy: policy})
		entries, problems := spec.Plan(fsys, r, time.Now())
		st := offlineStatus(entries, append(r.Problems, problems...))
		st.Commit = commit
		return st, nil
	}
}

// electionFor builds the election when --leader-elect is set (nil when
// not). The caller routes klog (process-wide) before it starts.
func (l *leaderFlags) electionFor(log *slog.Logger, f *daemonFlags, repo *gitsource.Repo) (*election, error) {
	if !l.enabled {
		return nil, nil
	}
	policy, err := f.policy()
	if err != nil {
		return nil, err
	}
	return l.newElection(log, offlineReader(repo, policy))
}

// start runs the election in a goroutine for as long as the daemon runs.
// It returns the daemon's context, a stop function that releases the Lease
// and waits for the election to end, a channel that receives run's result,
// and one that signals each change of lead. A nil election (no
// --leader-elect) leads always.
func (e *election) start(ctx context.Context) (context.Context, func(), <-chan error, <-chan struct{}) {
	if e == nil {
		return ctx, func() {}, nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- e.run(ctx)
	}()
	return ctx, func() { cancel(); <-finished }, done, e.changed
}

// current returns the context a pass runs under while this replica leads:
// it ends the moment the lead is lost. Without election it is ctx.
func (e *election) current(ctx context.Context) (context.Context, bool) {
	if e == nil {
		return ctx, true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.leading == nil || e.leading.Err() != nil {
		return nil, false
	}
	return e.leading, true
}

// leaderGauge is certops_leader for one registry.
func (e *election) leaderGauge() prometheus.Gauge {
	if e == nil {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "certops_leader", Help: "1 while this replica holds the leader Lease (or runs without leader election), else 0."})
		g.Set(1)
		return g
	}
	return e.gauge
}

// statusOr is what /api/v1/status serves: the reconciler's status while
// leading, the offline view while following.
func (e *election) statusOr(rec *reconciler.Reconciler) reconciler.Status {
	if _, leading := e.current(context.Background()); leading {
		return rec.Status()
	}
	return e.followerStatus()
}
