package main

import (
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rssAtPeak is what the process' resident memory was made of when it was
// highest, as watchRSS last saw it.
type rssAtPeak struct {
	mu sync.Mutex
	// From /proc/self/status: anonymous and file-backed resident memory
	// (the binary's pages are file-backed).
	anon, file uint64
	// From runtime/metrics, the Go runtime's view of the same moment.
	heapObjects, heapFree, heapUnused, stacks, metadata, other uint64
	phase                                                      string
}

var peakMem rssAtPeak

// watchRSS samples the resident set every 20 ms and, whenever it is the
// largest yet, records what it is made of. It stops when stop is closed.
func watchRSS(stop <-chan struct{}) {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/memory/classes/os-stacks:bytes"},
		{Name: "/memory/classes/metadata/other:bytes"},
		{Name: "/memory/classes/metadata/mspan/inuse:bytes"},
		{Name: "/memory/classes/metadata/mcache/inuse:bytes"},
		{Name: "/memory/classes/profiling/buckets:bytes"},
		{Name: "/memory/classes/other:bytes"},
	}
	var best uint64
	every(20*time.Millisecond, stop, func() {
		anon, file := residentKiB()
		if anon+file <= best {
			return
		}
		best = anon + file
		metrics.Read(samples)
		v := func(i int) uint64 { return samples[i].Value.Uint64() }
		phase := ""
		if p := heapPhase.Load(); p != nil {
			phase = *p
		}
		peakMem.mu.Lock()
		peakMem.anon, peakMem.file = anon<<10, file<<10
		peakMem.heapObjects, peakMem.heapFree, peakMem.heapUnused = v(0), v(1), v(2)
		peakMem.stacks = v(3) + v(4)
		peakMem.metadata = v(5) + v(6) + v(7)
		peakMem.other = v(8) + v(9)
		peakMem.phase = phase
		peakMem.mu.Unlock()
	})
}

// residentKiB reads RssAnon and RssFile (plus RssShmem, counted as file)
// from /proc/self/status.
func residentKiB() (anon, file uint64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "RssAnon":
			anon = n
		case "RssFile", "RssShmem":
			file += n
		}
	}
	return anon, file
}

// resident returns the anonymous and file-backed bytes at the peak.
func (p *rssAtPeak) resident() (anon, file uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.anon, p.file
}

// String describes the peak in MiB. Heap free is mapped memory the heap
// may reuse and has not yet returned to the OS; the runtime counts it
// whether or not its pages are resident.
func (p *rssAtPeak) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	return fmt.Sprintf("resident at the sampled peak (phase %s): %.0f MiB anonymous + %.0f MiB file-backed; Go runtime: heap objects %.0f, heap free %.0f, heap unused %.0f, stacks %.0f, metadata %.0f, other %.0f MiB",
		p.phase, mib(p.anon), mib(p.file), mib(p.heapObjects), mib(p.heapFree), mib(p.heapUnused), mib(p.stacks), mib(p.metadata), mib(p.other))
}
