package capstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/capstore"
)

func TestRecall(t *testing.T) {
	t.Run("store", func(t *testing.T) { testRecall(t, func(s *capstore.Store) recaller { return s }) })
	// A snapshot reads whole buckets, and keeps them.
	t.Run("snapshot", func(t *testing.T) { testRecall(t, func(s *capstore.Store) recaller { return s.Snapshot() }) })
}

type recaller interface {
	Recall(ctx context.Context, numbers []uint64, out []capstore.Record) error
}

func testRecall(t *testing.T, recall func(*capstore.Store) recaller) {
	b := setup(t)
	// Enough numbers that several pipelines of buckets are read, some
	// buckets holding more than one asked number.
	const n = 12_000
	var ans []capstore.Answer
	nums := make([]uint64, 0, n+4)
	want := make([]capstore.Record, 0, n+4)
	for i := range uint64(n) {
		num := 919_800_000_000 + i*7919
		nums = append(nums, num)
		if i%3 == 0 {
			want = append(want, capstore.Record{})
			continue
		}
		c := capstore.Capable + capstore.Capability(i%3)
		at := t0.Add(time.Duration(i) * time.Second)
		ans = append(ans, capstore.Answer{Number: num, Capability: c, At: at})
		want = append(want, capstore.Record{Capability: c, At: at})
	}
	b.remember(t, ans...)
	// A number asked twice, out of range, zero, and a rejection.
	rej := capstore.Answer{Number: 14155550100, Capability: capstore.Rejected, Code: "E21", Message: "landline", At: t0}
	b.remember(t, rej)
	nums = append(nums, nums[1], 1_000_000_000_000_000, 0, rej.Number)
	want = append(want, want[1], capstore.Record{}, capstore.Record{}, capstore.Record{Capability: capstore.Rejected, At: t0, Reason: 1})

	out := make([]capstore.Record, len(nums))
	for i := range out {
		out[i] = capstore.Record{Capability: capstore.Unknown} // overwritten
	}
	r := recall(b.store)
	if err := r.Recall(b.ctx, nums, out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Fatalf("Recall (-want +got):\n%s", diff)
	}
	// Asked again, in another order: the same answers.
	rev := slices.Clone(nums)
	slices.Reverse(rev)
	if err := r.Recall(b.ctx, rev, out); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(out)
	if diff := cmp.Diff(want, out); diff != "" {
		t.Fatalf("Recall again (-want +got):\n%s", diff)
	}
	if err := r.Recall(b.ctx, nums, out[:1]); err == nil {
		t.Fatal("Recall into too few records: no error")
	}
}
