package worker_test

import (
	"testing"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/worker"
)

// The daily sweep drops the answers older than ForgetAfter, once for the
// fleet per day. A private Redis: the memory and its sweep are the
// Redis's.
func TestSweepMemory(t *testing.T) {
	b := setup(t, worker.Config{ForgetAfter: 48 * time.Hour}, true, 1)
	mem := capstore.New(b.rdb.Client(t), capstore.Options{})
	now := time.Now().UTC().Truncate(time.Second)
	err := mem.Remember(b.ctx, []capstore.Answer{
		{Number: 919876500201, Capability: capstore.Capable, At: now.Add(-time.Hour)},
		{Number: 919876500202, Capability: capstore.NotCapable, At: now.Add(-72 * time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	swept, err := b.w.SweepMemoryOnce(b.ctx, now)
	if err != nil || !swept {
		t.Fatalf("first sweep: %v, %v; want done", swept, err)
	}
	recs, err := mem.Lookup(b.ctx, []uint64{919876500201, 919876500202})
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Capability != capstore.Capable || !recs[1].IsZero() {
		t.Errorf("after the sweep: %+v, want the recent answer only", recs)
	}
	if swept, err := b.w.SweepMemoryOnce(b.ctx, now); err != nil || swept {
		t.Errorf("second sweep the same day: %v, %v; want none", swept, err)
	}
}
