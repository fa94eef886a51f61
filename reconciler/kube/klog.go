package kube

import (
	"log/slog"

	"k8s.io/klog/v2"
)

// RouteKlog sends client-go's klog output (warnings from the API server,
// client-side throttling notices, reflector errors) to logger, so the daemon
// has one log stream in one format. It changes process-wide state: call it
// once at start-up, before the first Cluster is used.
func RouteKlog(logger *slog.Logger) {
	klog.SetSlogLogger(logger.With("component", "client-go"))
}
