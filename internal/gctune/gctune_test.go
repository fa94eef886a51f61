package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
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

// TestReleaserAfterPass: a pass that allocated more than is live returns
// the free heap to the operating system; a quiet one does not, nor does
// a quiet pass after a busy stretch between passes.
func TestReleaserAfterPass(t *testing.T) {
	var r Releaser
	r.BeforePass()
	if r.AfterPass() {
		t.Errorf("released after a pass that allocated nothing")
	}
	released := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	// Churn: 64 MiB allocated and dropped, in pieces, with a small live heap.
	var keep [][]byte
	churn := func() {
		for i := range 1024 {
			b := make([]byte, 64<<10)
			b[0] = byte(i)
			if i%256 == 0 {
				keep = append(keep, b)
			}
		}
	}
	r.BeforePass()
	churn()
	before := released()
	if !r.AfterPass() {
		t.Fatalf("did not release after a pass that allocated 64 MiB")
	}
	if after := released(); after <= before {
		t.Errorf("heap released to the OS %d bytes before, %d after; want more", before, after)
	}
	churn() // between passes
	r.BeforePass()
	if r.AfterPass() {
		t.Errorf("released after a quiet pass, for what was allocated before it")
	}
	runtime.KeepAlive(keep)
}
