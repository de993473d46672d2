package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestGCOffUntilStarted: the collector is off from the first enqueue that
// starts to the last one started, then as it was. Not parallel: it sets the
// process's collector.
func TestGCOffUntilStarted(t *testing.T) {
	gc := func() (int, int64) {
		pct := debug.SetGCPercent(100)
		debug.SetGCPercent(pct)
		return pct, debug.SetMemoryLimit(-1)
	}
	pct, limit := gc()
	if pct < 0 || limit != math.MaxInt64 {
		t.Skipf("the collector is set already (GOGC %d, GOMEMLIMIT %d)", pct, limit)
	}
	a := gcOffUntilStarted()
	b := gcOffUntilStarted()
	if p, l := gc(); p != -1 || l != startMemoryLimit {
		t.Errorf("starting: GOGC %d, limit %d; want off, %d", p, l, startMemoryLimit)
	}
	a()
	a()
	if p, _ := gc(); p != -1 {
		t.Errorf("one of two started: GOGC %d, want off", p)
	}
	b()
	if p, l := gc(); p != pct || l != limit {
		t.Errorf("all started: GOGC %d, limit %d; want %d, %d", p, l, pct, limit)
	}
}
