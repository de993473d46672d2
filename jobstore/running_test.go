package jobstore_test

import (
	"slices"
	"testing"
	"time"
)

// A run held is not claimed while its hold lasts; a lapsed one is claimed
// by one caller only. The runs' key is the fleet's: the test uses members
// of its own and looks for them only.
func TestHoldAndClaimRuns(t *testing.T) {
	b := setup(t)
	live, dead := b.id+" live", b.id+" dead"
	if err := b.store.HoldRuns(b.ctx, time.Minute, live); err != nil {
		t.Fatal(err)
	}
	if err := b.store.HoldRuns(b.ctx, 0, dead); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	var claimed []string
	for range 2 {
		got, err := b.store.HoldAndClaimRuns(b.ctx, time.Minute, 1000, live)
		if err != nil {
			t.Fatal(err)
		}
		claimed = append(claimed, got...)
	}
	if slices.Contains(claimed, live) || !slices.Contains(claimed, dead) || len(slices.DeleteFunc(claimed, func(r string) bool { return r != dead })) != 1 {
		t.Errorf("claimed %q: want the lapsed run once and not the held one", claimed)
	}
	if err := b.store.ReleaseRun(b.ctx, live); err != nil {
		t.Fatal(err)
	}
}
