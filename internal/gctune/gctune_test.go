package gctune

import (
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	debug.SetGCPercent(100)
	Apply(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != DefaultPercent {
		t.Errorf("GOGC unset: the collector's target is %d, want %d", got, DefaultPercent)
	}
	// With GOGC set, the runtime's reading of it (here 150) stays.
	debug.SetGCPercent(150)
	Apply(func(k string) string {
		if k == "GOGC" {
			return "150"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GOGC=150: the collector's target is %d, want 150", got)
	}
}
