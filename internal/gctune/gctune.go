// Package gctune holds the setting certops gives the Go collector.
package gctune

import (
	"runtime/debug"
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
