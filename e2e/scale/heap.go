package main

import (
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"
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
