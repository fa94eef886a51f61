package main

import (
	"context"
	"log"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"certops.dev/certops/e2e/peer/kubepeer"
)

// watchHeap writes a heap profile to file each time the live heap after a
// garbage collection grows by a tenth past the largest seen, so that file
// ends up describing the peak: what held memory when it was highest. It
// stops when stop is closed.
func watchHeap(file string, stop <-chan struct{}) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var peak uint64
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		metrics.Read(sample)
		live := sample[0].Value.Uint64()
		if live <= peak+peak/10 {
			continue
		}
		peak = live
		f, err := os.Create(file)
		if err != nil {
			continue
		}
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		_ = f.Close()
	}
}

// profileAPIServer writes a CPU profile of the kube-apiserver, taken over
// apiserverProfileSeconds through its /debug/pprof endpoint, to file. A
// failure is logged: the profile is a diagnostic, not a figure.
func profileAPIServer(k *kubepeer.Kube, file string) {
	if apiserverProfileSeconds <= 0 {
		return
	}
	rc, err := rest.RESTClientFor(restForProfile(k.Config))
	if err == nil {
		var b []byte
		b, err = rc.Get().AbsPath("/debug/pprof/profile").Param("seconds", strconv.Itoa(apiserverProfileSeconds)).
			Timeout(time.Duration(apiserverProfileSeconds+30) * time.Second).DoRaw(context.Background())
		if err == nil {
			err = os.WriteFile(file, b, 0o644)
		}
	}
	if err != nil {
		log.Printf("apiserver profile: %v", err)
	}
}

// restForProfile is cfg for raw requests outside any API group.
func restForProfile(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &schema.GroupVersion{}
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	c.Timeout = 0
	return c
}
