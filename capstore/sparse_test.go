package capstore_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/capstore"
)

// The sparse readers see what Each and Recall see.
func TestSparseReaders(t *testing.T) {
	b := setup(t)
	nums := []uint64{919876500001, 0, 14155552671, capstore.MaxNumber + 1}
	got := make([]capstore.Record, len(nums))
	if err := b.store.RecallSparse(b.ctx, nums, got); err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if !r.IsZero() {
			t.Fatalf("an empty memory recalls %+v for %d", r, nums[i])
		}
	}
	var ans []capstore.Answer
	for i := range uint64(3000) {
		ans = append(ans, capstore.Answer{Number: 33612340000 + i*11, Capability: capstore.Capability(1 + i%3), At: t0.Add(time.Duration(i) * time.Second)})
		nums = append(nums, 33612340000+i*5)
	}
	b.remember(t, ans...)
	sparse := map[uint64]capstore.Record{}
	if err := b.store.EachSparse(b.ctx, func(n uint64, r capstore.Record) error { sparse[n] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.all(t), sparse); diff != "" {
		t.Fatalf("EachSparse (-Each +EachSparse):\n%s", diff)
	}
	want := make([]capstore.Record, len(nums))
	got = make([]capstore.Record, len(nums))
	if err := b.store.Recall(b.ctx, nums, want); err != nil {
		t.Fatal(err)
	}
	if err := b.store.RecallSparse(b.ctx, nums, got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("RecallSparse (-Recall +RecallSparse):\n%s", diff)
	}
}
