// Package gctune holds the settings certops gives the Go collector and
// when it returns memory to the operating system.
package gctune

import (
	"runtime/debug"
	"runtime/metrics"
)

// DefaultPercent is the collector's target (GOGC) certops runs with when
// GOGC is not set. Most of certops' heap is long-lived: the parsed specs,
// the clear-text metadata of every Secret file, go-git's pack indexes.
// The runtime lets the heap grow to twice what is live before it collects,
// and at 10,000 certificates the resident set follows the largest such
// goal of a pass. A target of 75 cuts that peak by about a tenth (the
// scale harness: 172-174 MiB instead of 182-191) for about 5% more CPU in
// the largest pass, when the collector's whole share at 100 is 2-3%.
const DefaultPercent = 75

// Apply sets the collector's target to DefaultPercent unless GOGC is set
// in the environment, which the runtime has read already.
func Apply(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultPercent)
	}
}

// Releaser returns the heap's free memory to the operating system after a
// pass that churned through more memory than it keeps.
//
// The runtime gives freed pages back slowly, in the background, down to a
// tenth above its next collection's goal, and that goal stays where the
// last busy pass left it until a collection (at the latest the one forced
// every two minutes). Between passes a daemon therefore held its busiest
// pass' heap: at 10,000 certificates, the scale harness found 31 MiB free
// but resident after a first apply, a third of the heap. AfterPass hands
// it back at once, for the cost of one collection of the live heap (about
// 30 MB there), and only after a pass that allocated at least that much;
// what the process allocates between passes (status page, metrics) does
// not count.
type Releaser struct {
	allocs uint64 // allocated bytes when the pass began
}

// minChurn is the least a pass must allocate for AfterPass to release
// memory, whatever is live (nothing, before the first collection).
const minChurn = 4 << 20

// BeforePass notes how much the process has allocated as a pass begins.
func (r *Releaser) BeforePass() { r.allocs, _ = heapCounts() }

// AfterPass returns free heap memory to the operating system when the pass
// since BeforePass allocated more than is live (and at least minChurn),
// and reports whether it did. Call both from one goroutine.
func (r *Releaser) AfterPass() bool {
	allocs, live := heapCounts()
	if allocs-r.allocs < max(live, minChurn) {
		return false
	}
	debug.FreeOSMemory()
	return true
}

// heapCounts returns the bytes allocated on the heap since the process
// began and the live heap as of the last collection.
func heapCounts() (allocs, live uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}
