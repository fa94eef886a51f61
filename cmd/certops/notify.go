package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/kube"
	"certops.dev/certops/reconciler/notify"
)

// notifications counts each event per sink: sent, failed (gave up) or
// dropped (the sink's queue was full).
var notifications = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certops_notifications_total",
	Help: "Notifications by sink (webhook, kubernetes) and result (sent, failed, dropped)."}, []string{"sink", "result"})

func countNotification(sink, result string) { notifications.WithLabelValues(sink, result).Inc() }

// notifiers builds the webhook from --notify-url and --notify-secret-file,
// and adds the cluster step's Kubernetes Events when applying.
func (f *daemonFlags) notifiers(log *slog.Logger, applier reconciler.Applier) ([]reconciler.Notifier, error) {
	var out []reconciler.Notifier
	if k, ok := applier.(reconciler.Notifier); ok {
		out = append(out, k)
	}
	if f.notifyURL == "" {
		return out, nil
	}
	if f.notifySecretFile == "" {
		return nil, errors.New("--notify-url needs --notify-secret-file: the webhook is always signed")
	}
	secret, err := os.ReadFile(f.notifySecretFile)
	if err != nil {
		return nil, fmt.Errorf("--notify-secret-file: %w", err)
	}
	cfg := notify.NewDefaultConfig()
	cfg.URL, cfg.Secret, cfg.Logger = f.notifyURL, []byte(strings.TrimSpace(string(secret))), log
	w, err := notify.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("--notify-url: %w", err)
	}
	return append(out, w), nil
}

// Sink names the Kubernetes Events sink in metrics.
func (a *kubeApplier) Sink() string { return "kubernetes" }

// Notify records ev as a Kubernetes Event on the certificate's Secret in
// each target cluster the cluster step knows. Removals are not recorded:
// the Secret is pruned with them.
func (a *kubeApplier) Notify(ctx context.Context, ev reconciler.Event) error {
	typ, reason, action := corev1.EventTypeNormal, string(ev.Kind), ""
	switch ev.Kind {
	case reconciler.EventIssued:
		action = "Issue"
	case reconciler.EventRenewed:
		action = "Renew"
	case reconciler.EventReissued:
		action = "Reissue"
	case reconciler.EventFailed:
		typ, reason, action = corev1.EventTypeWarning, "IssuanceFailed", "Issue"
	default:
		return nil
	}
	a.mu.Lock()
	clusters := a.clusters
	a.mu.Unlock()
	var errs []error
	for _, t := range ev.Targets {
		c := clusters[t.Cluster]
		if c == nil {
			continue
		}
		err := c.RecordEvent(ctx, kube.Event{Namespace: t.Namespace, SecretName: t.SecretName, Type: typ, Reason: reason,
			Action: action, Message: ev.Message, Time: ev.Time})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// closeNotifiers gives queued notifications up to a minute to go out
// (a webhook's retries fit), even when ctx has ended (a signal).
func closeNotifiers(ctx context.Context, log *slog.Logger, rec *reconciler.Reconciler) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		log.Warn("notifications left undelivered", "error", err)
	}
}
