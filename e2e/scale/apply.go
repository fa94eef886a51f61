package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/kube"
	"certops.dev/certops/spec"
)

// applier is the cluster step as cmd/certops wires it (kubeApplier), for
// clusters reached through a kubeconfig file: one kube.Fleet built from
// certops.yaml's clusters, with their qps and burst, fed every Desired of
// the pass. It also times its own Apply calls, so the harness can report the
// apply step apart from the rest of the pass.
type applier struct {
	mu      sync.Mutex
	fleet   *kube.Fleet
	key     string
	elapsed time.Duration // of the last Apply
	cpu     float64       // CPU seconds of the process during the last Apply
	peerCPU float64       // and of the peers (peerCPUSeconds)
}

var _ reconciler.Applier = (*applier)(nil)

func (a *applier) fleetFor(cfg *spec.Config) (*kube.Fleet, error) {
	// Each pass loads certops.yaml afresh; the fleet (and its clients) is
	// kept while the clusters' settings stay the same, as cmd/certops does.
	js, err := json.Marshal(cfg.Spec.Clusters)
	if err != nil {
		return nil, err
	}
	key := string(js)
	if a.fleet != nil && a.key == key {
		return a.fleet, nil
	}
	var list []*kube.Cluster
	for _, cl := range cfg.Spec.Clusters {
		if cl.Kubeconfig == nil || cl.Kubeconfig.Path == "" {
			return nil, fmt.Errorf("scale: cluster %s: only kubeconfig.path is wired here", cl.Name)
		}
		c, err := kube.NewCluster(cl.Name, kube.ClusterConfig{KubeconfigPath: cl.Kubeconfig.Path, Context: cl.Kubeconfig.Context,
			Namespaces: cl.Namespaces, Prune: cl.Prune, QPS: cl.QPS, Burst: cl.Burst})
		if err != nil {
			return nil, fmt.Errorf("scale: cluster %s: %w", cl.Name, err)
		}
		list = append(list, c)
	}
	f, err := kube.NewFleet(list...)
	if err != nil {
		return nil, err
	}
	a.fleet, a.key = f, key
	return f, nil
}

func (a *applier) Apply(ctx context.Context, req reconciler.ApplyRequest) reconciler.ApplyReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	start, cpu0, peer0 := time.Now(), cpuSeconds(), peerCPUSeconds()
	defer func() {
		a.elapsed, a.cpu, a.peerCPU = time.Since(start), cpuSeconds()-cpu0, peerCPUSeconds()-peer0
	}()
	var rep reconciler.ApplyReport
	if len(req.Config.Spec.Clusters) == 0 {
		return rep
	}
	fleet, err := a.fleetFor(req.Config)
	if err != nil {
		rep.Errors = append(rep.Errors, err)
		return rep
	}
	pass := kube.Pass{Desired: kube.DesiredMap(req.Desired), Prune: true}
	for _, d := range req.Desired {
		pass.Desired[d.Target.Cluster] = append(pass.Desired[d.Target.Cluster], kube.SecretFor(d))
	}
	fleet.Apply(ctx, pass).AddTo(&rep)
	return rep
}

// last returns the wall, CPU and peers' CPU seconds of the last Apply.
func (a *applier) last() (wall, cpu, peerCPU float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.elapsed.Seconds(), a.cpu, a.peerCPU
}
