package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"certops.dev/certops/internal/gctune"
	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/issuer/acme"
	"certops.dev/certops/reconciler/kube"
	"certops.dev/certops/spec"
)

func newRunCommand() *cobra.Command {
	var f daemonFlags
	var webhookSecretFile string
	var lf leaderFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: poll the repository and reconcile until stopped",
		Long: `Run is the daemon. It reconciles at start, then whenever the repository's
branch moves (one ls-remote per --interval, jittered), when a renewal or a retry
falls due, when a push webhook arrives, or on SIGHUP.

It serves on --listen:
  /                          a read-only status page: states, expiry timeline, history
  /healthz, /readyz          liveness; readiness after the first pass
  /metrics                   Prometheus metrics (certops_*)
  /api/v1/status             every certificate's state as JSON, with Flux-style conditions
  /hooks/git                 push webhook (GitHub X-Hub-Signature-256 or GitLab X-Gitlab-Token),
                             checked against --webhook-secret-file`,
		Example: `  certops run --repo ssh://git@git.example.com/platform/certs.git \
    --auth-dir /etc/certops/git --age-identity /etc/certops/age/key.txt \
    --webhook-secret-file /etc/certops/webhook/secret`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.resolve(cmd.Flags(), os.Getenv); err != nil {
				return err
			}
			log, err := f.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			setMemoryLimit(log, os.DirFS("/"), os.Getenv)
			gctune.Apply(os.Getenv)
			var secret []byte
			if webhookSecretFile != "" {
				if secret, err = os.ReadFile(webhookSecretFile); err != nil {
					return fmt.Errorf("--webhook-secret-file: %w", err)
				}
				secret = []byte(strings.TrimSpace(string(secret)))
			}
			ctx := cmd.Context()
			rec, repo, err := f.build(ctx, log)
			if err != nil {
				return err
			}
			defer repo.Close()
			defer closeNotifiers(ctx, log, rec)
			if lf.enabled {
				kube.RouteKlog(log) // client-go's leader election logs through klog
			}
			el, err := lf.electionFor(log, &f, repo)
			if err != nil {
				return err
			}
			return serveDaemon(ctx, log, rec, f.interval, f.listen, secret, el, newGitHistory(repo.GitDir(), repo.Head))
		},
	}
	f.register(cmd.Flags())
	lf.register(cmd.Flags())
	cmd.Flags().StringVar(&webhookSecretFile, "webhook-secret-file", "", "shared secret of the push webhook (required for /hooks/git)")
	return cmd
}

// runDaemon owns the loop and the HTTP server; both end when ctx does.
func runDaemon(ctx context.Context, log *slog.Logger, rec *reconciler.Reconciler, interval time.Duration, listen string, webhookSecret []byte) error {
	return serveDaemon(ctx, log, rec, interval, listen, webhookSecret, nil, nil)
}

// serveDaemon is runDaemon with leader election: with el set, passes run
// only while this replica leads and end the moment it stops leading; a
// follower serves the repository's offline status (see leader.go).
func serveDaemon(ctx context.Context, log *slog.Logger, rec *reconciler.Reconciler, interval time.Duration, listen string, webhookSecret []byte, el *election, hist historyReader) error {
	ctx, stopElection, elDone, elChanged := el.start(ctx)
	defer stopElection()
	trigger := make(chan string, 1)
	kick := func(why string) {
		select {
		case trigger <- why:
		default: // a pass is already queued
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	m := newMetrics()
	m.registry.MustRegister(el.leaderGauge())
	status := func() reconciler.Status { return el.statusOr(rec) }
	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "first pass not finished", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(status())
	})
	mux.Handle(acme.HTTP01Path, http01)
	registerStatusPage(mux, log, status, hist)
	mux.HandleFunc("POST /hooks/git", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "reading body", http.StatusBadRequest)
			return
		}
		if !webhookAuthorized(webhookSecret, r.Header, body) {
			http.Error(w, "signature does not match", http.StatusUnauthorized)
			return
		}
		kick("webhook")
		w.WriteHeader(http.StatusAccepted)
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String())

	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	force := true // the first pass always fetches
	var release gctune.Releaser
	for {
		if passCtx, leading := el.current(ctx); leading {
			release.BeforePass()
			rep := rec.Pass(passCtx, force)
			release.AfterPass()
			force = false
			m.observe(rep, rec.Status())
			if !rep.Idle {
				log.Info("pass done", "commit", short(rep.Commit), "pushed", short(rep.Pushed), "failed", rep.Failed(),
					"problems", len(rep.Problems), "duration", rep.Duration.Round(time.Millisecond), "next_due", rep.NextDue)
			}
		} else {
			el.refresh(ctx)
			force = true // the first pass as leader fetches
		}
		ready.Store(true)
		// Poll interval jittered by ±10% so replicas and daemons do not
		// poll a shared Git host in lockstep; a due renewal or retry
		// comes sooner.
		wait := time.Duration(float64(interval) * (0.9 + 0.2*rnd.Float64()))
		if due := rec.NextDue(); !due.IsZero() {
			if d := time.Until(due); d < wait {
				wait = max(d, time.Second)
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
			if err := <-srvDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("status server: %w", err)
			}
			return nil
		case why := <-trigger:
			log.Info("pass triggered", "by", why)
			force = true
		case <-hup:
			log.Info("pass triggered", "by", "SIGHUP")
			force = true
		case <-timer.C:
		case <-elChanged:
			force = true
		case err := <-elDone:
			timer.Stop()
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
			if serr := <-srvDone; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
				log.Error("status server", "error", serr)
			}
			return err
		case err := <-srvDone:
			return fmt.Errorf("status server: %w", err)
		}
		timer.Stop()
	}
}

// webhookAuthorized checks a push webhook: GitHub's HMAC-SHA256 signature
// header, or GitLab's shared token. Without a configured secret every hook
// is refused.
func webhookAuthorized(secret []byte, h http.Header, body []byte) bool {
	if len(secret) == 0 {
		return false
	}
	if sig := h.Get("X-Hub-Signature-256"); sig != "" {
		got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
		if err != nil {
			return false
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		return hmac.Equal(got, mac.Sum(nil))
	}
	if tok := h.Get("X-Gitlab-Token"); tok != "" {
		return hmac.Equal([]byte(tok), secret)
	}
	return false
}

// Git operation metrics, fed by gitsource.Options.Observe. Like
// caRequests they are process-wide: the repository is opened before the
// daemon's registry exists.
var (
	gitOperations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certops_git_operations_total",
		Help: "Git operations (ls-remote, fetch, clone, commit, push), by result (success, error)."}, []string{"operation", "result"})
	gitDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "certops_git_operation_duration_seconds",
		Help: "Duration of Git operations.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"operation"})
)

func observeGit(op string, d time.Duration, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	gitOperations.WithLabelValues(op, result).Inc()
	gitDuration.WithLabelValues(op).Observe(d.Seconds())
}

// metrics are cert-manager's certificate metrics under the certops_ prefix,
// plus the daemon's own.
type metrics struct {
	registry   *prometheus.Registry
	expiration *prometheus.GaugeVec
	notBefore  *prometheus.GaugeVec
	renewal    *prometheus.GaugeVec
	ready      *prometheus.GaugeVec
	issuance   *prometheus.CounterVec
	passes     *prometheus.CounterVec
	duration   prometheus.Histogram
	applied    *prometheus.CounterVec
	problems   prometheus.Gauge
}

func newMetrics() *metrics {
	labels := []string{"name", "namespace", "issuer_name"}
	m := &metrics{
		registry: prometheus.NewRegistry(),
		expiration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "certops_certificate_expiration_timestamp_seconds",
			Help: "The date after which the certificate expires, in Unix seconds."}, labels),
		notBefore: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "certops_certificate_not_before_timestamp_seconds",
			Help: "The date before which the certificate is not valid, in Unix seconds."}, labels),
		renewal: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "certops_certificate_renewal_timestamp_seconds",
			Help: "The time at which the certificate will be renewed, in Unix seconds."}, labels),
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "certops_certificate_ready_status",
			Help: "The ready status of the certificate (1 for the condition's current status)."}, append(labels, "condition")),
		issuance: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certops_issuance_total",
			Help: "Issuances attempted, by issuer and result."}, []string{"issuer_name", "result"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certops_passes_total",
			Help: "Reconciliation passes, by result (idle, ok, failed)."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "certops_pass_duration_seconds",
			Help: "Duration of reconciliation passes that fetched.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certops_apply_total",
			Help: "Secrets applied to clusters, by result."}, []string{"result"}),
		problems: prometheus.NewGauge(prometheus.GaugeOpts{Name: "certops_spec_problems",
			Help: "Problems found in the repository's specs at the last pass."}),
	}
	m.registry.MustRegister(caRequests, gitOperations, gitDuration, m.expiration, m.notBefore, m.renewal, m.ready, m.issuance, m.passes, m.duration, m.applied, m.problems,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registry.MustRegister(notifications)
	return m
}

func (m *metrics) observe(rep *reconciler.Report, st reconciler.Status) {
	switch {
	case rep.Idle:
		m.passes.WithLabelValues("idle").Inc()
		return
	case rep.Error != "":
		m.passes.WithLabelValues("failed").Inc()
	default:
		m.passes.WithLabelValues("ok").Inc()
	}
	m.duration.Observe(rep.Duration.Seconds())
	m.problems.Set(float64(len(rep.Problems)))
	if rep.Apply != nil {
		m.applied.WithLabelValues("applied").Add(float64(rep.Apply.Applied))
		m.applied.WithLabelValues("unchanged").Add(float64(rep.Apply.Unchanged))
		m.applied.WithLabelValues("error").Add(float64(len(rep.Apply.Errors)))
	}
	m.expiration.Reset()
	m.notBefore.Reset()
	m.renewal.Reset()
	m.ready.Reset()
	for _, c := range st.Certificates {
		ns, name, _ := strings.Cut(c.Name, "/")
		lv := []string{name, ns, c.Issuer}
		if !c.NotAfter.IsZero() {
			m.expiration.WithLabelValues(lv...).Set(float64(c.NotAfter.Unix()))
		}
		if !c.NotBefore.IsZero() {
			m.notBefore.WithLabelValues(lv...).Set(float64(c.NotBefore.Unix()))
		}
		if !c.RenewAt.IsZero() {
			m.renewal.WithLabelValues(lv...).Set(float64(c.RenewAt.Unix()))
		}
		ready := "False"
		for _, cond := range c.Conditions {
			if cond.Type == "Ready" {
				ready = string(cond.Status)
			}
		}
		for _, s := range []string{"True", "False", "Unknown"} {
			v := 0.0
			if s == ready {
				v = 1
			}
			m.ready.WithLabelValues(append(lv, s)...).Set(v)
		}
		switch {
		case c.Error != "" && !c.Waiting:
			m.issuance.WithLabelValues(c.Issuer, "failed").Inc()
		case c.Error == "" && c.Action != spec.ActionNone:
			m.issuance.WithLabelValues(c.Issuer, "issued").Inc()
		}
	}
}
