package jobstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
)

// TestSeries: calls are counted in one-second buckets, which widen as the
// job ages, so a long job keeps few fields; the lowest fleet limit stays.
func TestSeries(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	rdb := redistest.Shared(t).Client(t)
	s := jobstore.New(rdb, jobstore.WithClock(func() time.Time { return now }))
	s.SetFleetLimit(200)
	slow := jobstore.New(rdb, jobstore.WithClock(func() time.Time { return now }))
	slow.SetFleetLimit(150)
	ctx, id := context.Background(), redistest.NewPrefix(t)

	steps := []struct {
		at    time.Duration
		store *jobstore.Store
		c     jobstore.Counters
	}{
		{0, s, jobstore.Counters{Requests: 3}},
		{0, s, jobstore.Counters{Requests: 1, RateLimited: 1}},
		{10 * time.Second, slow, jobstore.Counters{Requests: 2, Retries: 2}},
		{701 * time.Second, s, jobstore.Counters{Requests: 5}},  // age ≥ 600 s: 2 s buckets
		{702 * time.Second, s, jobstore.Counters{Requests: 1}},  // the next 2 s bucket
		{1300 * time.Second, s, jobstore.Counters{Requests: 4}}, // ≥ 1200 s: 4 s buckets
	}
	for _, st := range steps {
		now = t0.Add(st.at)
		if err := st.store.Add(ctx, id, st.c); err != nil {
			t.Fatal(err)
		}
	}
	ser, err := s.Series(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	type b struct{ start, width, n int64 }
	got := func(bs []jobstore.Bucket) []b {
		var out []b
		for _, x := range bs {
			out = append(out, b{x.Start.Unix() - t0.Unix(), int64(x.Width / time.Second), x.N})
		}
		return out
	}
	want := []b{{0, 1, 4}, {10, 1, 2}, {700, 2, 5}, {702, 2, 1}, {1300, 4, 4}}
	if g := got(ser.Requests); len(g) != len(want) {
		t.Fatalf("requests buckets %v, want %v", g, want)
	} else {
		for i := range want {
			if g[i] != want[i] {
				t.Errorf("bucket %d: %v, want %v", i, g[i], want[i])
			}
		}
	}
	if g := got(ser.RateLimited); len(g) != 1 || g[0] != (b{0, 1, 1}) {
		t.Errorf("429 buckets %v", g)
	}
	if g := got(ser.Retries); len(g) != 1 || g[0] != (b{10, 1, 2}) {
		t.Errorf("retry buckets %v", g)
	}
	if ser.Limit != 150 {
		t.Errorf("fleet limit %v, want the lowest, 150", ser.Limit)
	}
}
