package capstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

type bundle struct {
	ctx   context.Context
	store *capstore.Store
}

func setup(t *testing.T) bundle {
	t.Helper()
	t.Parallel()
	rdb := redistest.Shared(t).Client(t)
	return bundle{ctx: context.Background(), store: capstore.New(rdb, capstore.Options{Prefix: redistest.NewPrefix(t)})}
}

var t0 = time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)

func (b bundle) ingest(t *testing.T, cbs ...capstore.Callback) []capstore.Result {
	t.Helper()
	res, err := b.store.Ingest(b.ctx, cbs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (b bundle) lookup(t *testing.T, nums ...uint64) []capstore.Record {
	t.Helper()
	recs, err := b.store.Lookup(b.ctx, nums)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func cb(n uint64, c capstore.Capability, at time.Time) capstore.Callback {
	return capstore.Callback{Number: n, Capability: c, At: at}
}

func TestUnsolicitedNewerWins(t *testing.T) {
	b := setup(t)
	const n = 919876543210
	got := b.ingest(t, cb(n, capstore.Capable, t0.Add(time.Minute)))
	if got[0] != capstore.Unsolicited {
		t.Fatalf("first callback = %v, want unsolicited", got[0])
	}
	// An older answer arriving late changes nothing.
	b.ingest(t, cb(n, capstore.NotCapable, t0))
	want := []capstore.Record{{Capability: capstore.Capable, At: t0.Add(time.Minute)}, {}}
	if diff := cmp.Diff(want, b.lookup(t, n, n+1)); diff != "" {
		t.Fatalf("records (-want +got):\n%s", diff)
	}
	// A newer one replaces it.
	b.ingest(t, cb(n, capstore.NotCapable, t0.Add(2*time.Minute)))
	if r := b.lookup(t, n)[0]; r.Capability != capstore.NotCapable || !r.At.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("record = %+v, want the newer not_capable", r)
	}
}

func TestAwaitedJob(t *testing.T) {
	b := setup(t)
	ord, err := b.store.RegisterJob(b.ctx, "job1")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := b.store.RegisterJob(b.ctx, "job1"); err != nil || again != ord {
		t.Fatalf("RegisterJob again = %d, %v; want %d", again, err, ord)
	}
	nums := []uint64{14155550001, 14155550002, 14155550003, 14155550004}
	// The callback of the last number comes before it is registered.
	if r := b.ingest(t, cb(nums[3], capstore.Capable, t0.Add(time.Second))); r[0] != capstore.Unsolicited {
		t.Fatalf("early callback = %v", r[0])
	}
	var items []capstore.Awaited
	for i, n := range nums {
		items = append(items, capstore.Awaited{Number: n, Index: uint32(i)})
	}
	if err := b.store.Await(b.ctx, "job1", ord, items, t0); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(time.Minute)
	got := b.ingest(t,
		cb(nums[0], capstore.Capable, later),
		cb(nums[1], capstore.NotCapable, later),
		cb(nums[0], capstore.Capable, later.Add(time.Second)), // duplicate in the same batch
		capstore.Callback{Number: nums[2], Capability: capstore.Unknown, Raw: "pending", At: later},
		cb(nums[3], capstore.Capable, later), // duplicate of the early one
		cb(19995550000, capstore.Capable, later),
	)
	want := []capstore.Result{capstore.Stored, capstore.Stored, capstore.Duplicate, capstore.Stored,
		capstore.Duplicate, capstore.Unsolicited}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("results (-want +got):\n%s", diff)
	}
	// The duplicate did not move the time of the answer.
	if r := b.lookup(t, nums[0])[0]; !r.At.Equal(later) {
		t.Errorf("duplicate moved capability_at to %v", r.At)
	}
	jc, err := b.store.JobCounts(b.ctx, "job1")
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := capstore.JobCounts{Received: 4, Duplicates: 2, Capable: 2, NotCapable: 1, Unknown: 1,
		Unsolicited: 0, RawUnknown: map[string]int64{"pending": 1}}
	if diff := cmp.Diff(wantCounts, jc); diff != "" {
		t.Errorf("job counts (-want +got):\n%s", diff)
	}
	// After release the numbers' callbacks are unsolicited.
	if err := b.store.Release(b.ctx, ord, nums); err != nil {
		t.Fatal(err)
	}
	if r := b.ingest(t, cb(nums[1], capstore.NotCapable, later)); r[0] != capstore.Unsolicited {
		t.Errorf("callback after release = %v, want unsolicited", r[0])
	}
}

// A batch ingested twice (a receiver killed before it answered, the
// provider retrying) counts once.
func TestIngestTwice(t *testing.T) {
	b := setup(t)
	ord, err := b.store.RegisterJob(b.ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	var items []capstore.Awaited
	var cbs []capstore.Callback
	for i := range 300 {
		n := uint64(447700900000 + i*7919)
		items = append(items, capstore.Awaited{Number: n, Index: uint32(i)})
		cbs = append(cbs, cb(n, capstore.Capability(1+i%2), t0.Add(time.Hour)))
	}
	if err := b.store.Await(b.ctx, "j", ord, items, t0); err != nil {
		t.Fatal(err)
	}
	b.ingest(t, cbs...)
	for _, r := range b.ingest(t, cbs...) {
		if r != capstore.Duplicate {
			t.Fatalf("second ingest gave %v, want duplicate", r)
		}
	}
	jc, err := b.store.JobCounts(b.ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if jc.Received != 300 || jc.Capable != 150 || jc.NotCapable != 150 || jc.Duplicates != 300 {
		t.Errorf("counts %+v", jc)
	}
}

// A number two jobs await at once: its callback is the answer of both
// (each may end early), a job awaiting it again keeps one entry, and
// releasing one job leaves the other awaiting.
func TestNumberAwaitedByTwoJobs(t *testing.T) {
	b := setup(t)
	const shared, own = 919812340001, 919812340002
	ords := map[string]uint32{}
	for _, job := range []string{"a", "b"} {
		ord, err := b.store.RegisterJob(b.ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		ords[job] = ord
		for range 2 { // registering again is harmless
			if err := b.store.Await(b.ctx, job, ord, []capstore.Awaited{{Number: shared, Index: 0}, {Number: own, Index: 1}}, t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	counts := func(job string) capstore.JobCounts {
		t.Helper()
		jc, err := b.store.JobCounts(b.ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		return jc
	}
	at := t0.Add(time.Minute)
	if r := b.ingest(t, cb(shared, capstore.Capable, at)); r[0] != capstore.Stored {
		t.Fatalf("first callback = %v, want stored", r[0])
	}
	for _, job := range []string{"a", "b"} {
		if jc := counts(job); jc.Received != 1 || jc.Capable != 1 || jc.Duplicates != 0 {
			t.Errorf("job %s after the callback: %+v, want it received once", job, jc)
		}
	}
	if r := b.ingest(t, cb(shared, capstore.Capable, at.Add(time.Second))); r[0] != capstore.Duplicate {
		t.Fatalf("second callback = %v, want duplicate", r[0])
	}
	if r := b.lookup(t, shared)[0]; !r.At.Equal(at) {
		t.Errorf("a duplicate both jobs had moved capability_at to %v", r.At)
	}
	if err := b.store.Release(b.ctx, ords["a"], []uint64{shared, own}); err != nil {
		t.Fatal(err)
	}
	// b still awaits both numbers; a awaits nothing.
	if r := b.ingest(t, cb(own, capstore.NotCapable, at)); r[0] != capstore.Stored {
		t.Fatalf("callback for b's own number after a's release = %v, want stored", r[0])
	}
	b.ingest(t, cb(shared, capstore.Capable, at.Add(2*time.Second)))
	if a, bc := counts("a"), counts("b"); a.Received != 1 || a.Duplicates != 1 || bc.Received != 2 || bc.Duplicates != 2 {
		t.Errorf("after a's release: a %+v, b %+v", a, bc)
	}
}
