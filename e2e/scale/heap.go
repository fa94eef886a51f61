package main

import (
	"context"
	"log"
	"os"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"certops.dev/certops/e2e/peer/kubepeer"
)

// heapPhase names the phase running now, for watchHeap: "" before the
// first, then "<N>-<phase number>".
var heapPhase atomic.Pointer[string]

// watchHeap writes a heap profile to file each time the live heap after a
// garbage collection grows by a tenth past the largest seen, so that file
// ends up describing the peak: what held memory when it was highest. Each
// phase also gets its own profile, file with "-<N>-<phase number>" before
// its extension, taken the same way at that phase's own peak. It stops when
// stop is closed.
func watchHeap(file string, stop <-chan struct{}) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	var peak, phasePeak, phaseCycle uint64
	var phase string
	every(50*time.Millisecond, stop, func() {
		metrics.Read(sample)
		live, cycle := sample[0].Value.Uint64(), sample[1].Value.Uint64()
		if p := heapPhase.Load(); p != nil && *p != phase {
			phase, phasePeak, phaseCycle = *p, 0, cycle
		}
		// Both the live heap and the profile are as of the last completed
		// collection: one that ended before the phase began describes the
		// phase before.
		if phase != "" && cycle > phaseCycle && live > phasePeak+phasePeak/10 {
			phasePeak = live
			ext := filepath.Ext(file)
			writeHeapProfile(strings.TrimSuffix(file, ext) + "-" + phase + ext)
		}
		if live > peak+peak/10 {
			peak = live
			writeHeapProfile(file)
		}
	})
}

// every calls fn every d until stop is closed.
func every(d time.Duration, stop <-chan struct{}, fn func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			fn()
		}
	}
}

func writeHeapProfile(file string) {
	f, err := os.Create(file)
	if err != nil {
		return
	}
	_ = pprof.Lookup("heap").WriteTo(f, 0)
	_ = f.Close()
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
