package capstore_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/capstore"
)

func (b bundle) remember(t *testing.T, ans ...capstore.Answer) {
	t.Helper()
	if err := b.store.Remember(b.ctx, ans); err != nil {
		t.Fatal(err)
	}
}

func (b bundle) all(t *testing.T) map[uint64]capstore.Record {
	t.Helper()
	out := map[uint64]capstore.Record{}
	err := b.store.Each(b.ctx, func(n uint64, r capstore.Record) error {
		out[n] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRememberRejectionKeepsReason(t *testing.T) {
	b := setup(t)
	const n, m = 919876500101, 919876500102
	b.remember(t,
		capstore.Answer{Number: n, Capability: capstore.Rejected, Code: "E21", Message: "not a mobile number", At: t0},
		capstore.Answer{Number: m, Capability: capstore.Rejected, Code: "E21", Message: "not a mobile number", At: t0})
	recs := b.lookup(t, n, m)
	if recs[0].Capability != capstore.Rejected || !recs[0].At.Equal(t0) || recs[0].Reason == 0 || recs[1].Reason != recs[0].Reason {
		t.Fatalf("records = %+v, want two rejections at %v with one reason", recs, t0)
	}
	reasons, err := b.store.Reasons(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(capstore.Reason{Code: "E21", Message: "not a mobile number"}, reasons[recs[0].Reason]); diff != "" {
		t.Fatalf("reason (-want +got):\n%s", diff)
	}
}

// Reasons restored under their references read back the same, and new
// ones are numbered after them.
func TestRestoreReasons(t *testing.T) {
	b := setup(t)
	kept := map[uint16]capstore.Reason{1: {Code: "E21", Message: "not a mobile number"}, 2: {Code: "E30", Message: "barred"}}
	if err := b.store.RestoreReasons(b.ctx, kept); err != nil {
		t.Fatal(err)
	}
	b.remember(t,
		capstore.Answer{Number: 919876500121, Capability: capstore.Rejected, Code: "E30", Message: "barred", At: t0},
		capstore.Answer{Number: 919876500122, Capability: capstore.Rejected, Code: "E40", Message: "new", At: t0})
	recs := b.lookup(t, 919876500121, 919876500122)
	if recs[0].Reason != 2 || recs[1].Reason != 3 {
		t.Fatalf("references %d and %d, want 2 (restored) and 3 (new)", recs[0].Reason, recs[1].Reason)
	}
	reasons, err := b.store.Reasons(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept[3] = capstore.Reason{Code: "E40", Message: "new"}
	if diff := cmp.Diff(kept, reasons); diff != "" {
		t.Fatalf("reasons (-want +got):\n%s", diff)
	}
}

func TestRememberNewerWinsOverCallbacks(t *testing.T) {
	b := setup(t)
	const n = 919876500111
	b.remember(t, capstore.Answer{Number: n, Capability: capstore.Rejected, Code: "E1", At: t0.Add(time.Hour)})
	// A callback older than the rejection changes nothing.
	b.ingest(t, cb(n, capstore.Capable, t0))
	if got := b.lookup(t, n)[0]; got.Capability != capstore.Rejected {
		t.Fatalf("after an older callback: %+v, want the rejection", got)
	}
	// A newer one replaces it; an older remembered answer does not.
	b.ingest(t, cb(n, capstore.Capable, t0.Add(2*time.Hour)))
	b.remember(t, capstore.Answer{Number: n, Capability: capstore.NotCapable, At: t0.Add(90 * time.Minute)})
	want := capstore.Record{Capability: capstore.Capable, At: t0.Add(2 * time.Hour)}
	if diff := cmp.Diff(want, b.lookup(t, n)[0]); diff != "" {
		t.Fatalf("record (-want +got):\n%s", diff)
	}
}

func TestRememberRefusesOutOfRange(t *testing.T) {
	b := setup(t)
	if err := b.store.Remember(b.ctx, []capstore.Answer{{Number: 0, Capability: capstore.Capable, At: t0}}); err == nil {
		t.Fatal("number 0 remembered")
	}
	if err := b.store.Remember(b.ctx, []capstore.Answer{{Number: 1, Capability: capstore.None, At: t0}}); err == nil {
		t.Fatal("no capability remembered")
	}
}

func TestForgetSweepAndEach(t *testing.T) {
	b := setup(t)
	var ans []capstore.Answer
	want := map[uint64]capstore.Record{}
	for i := range uint64(300) {
		at := t0.Add(-time.Duration(i) * time.Hour)
		ans = append(ans, capstore.Answer{Number: 33612340000 + i, Capability: capstore.Capable, At: at})
		want[33612340000+i] = capstore.Record{Capability: capstore.Capable, At: at}
	}
	b.remember(t, ans...)
	if diff := cmp.Diff(want, b.all(t)); diff != "" {
		t.Fatalf("Each (-want +got):\n%s", diff)
	}
	n, err := b.store.Forget(b.ctx, []uint64{33612340000, 33612340001, 44000000000})
	if err != nil || n != 2 {
		t.Fatalf("Forget = %d, %v; want 2", n, err)
	}
	delete(want, 33612340000)
	delete(want, 33612340001)
	// Sweep drops records older than 100 hours: rows 101..299.
	n, _, err = b.store.Sweep(b.ctx, t0.Add(-100*time.Hour))
	if err != nil || n != 199 {
		t.Fatalf("Sweep = %d, %v; want 199", n, err)
	}
	for i := uint64(101); i < 300; i++ {
		delete(want, 33612340000+i)
	}
	if diff := cmp.Diff(want, b.all(t)); diff != "" {
		t.Fatalf("after Sweep (-want +got):\n%s", diff)
	}
	bytes, err := b.store.Bytes(b.ctx)
	if err != nil || bytes <= 0 {
		t.Fatalf("Bytes = %d, %v", bytes, err)
	}
	n, err = b.store.ForgetAll(b.ctx)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("ForgetAll = %d, %v; want %d", n, err, len(want))
	}
	if got := b.all(t); len(got) != 0 {
		t.Fatalf("after ForgetAll: %d records", len(got))
	}
}

func TestStale(t *testing.T) {
	t.Parallel()
	r := capstore.Record{Capability: capstore.Capable, At: t0}
	if r.Stale(t0.Add(time.Hour), 0) {
		t.Error("stale with forget-after 0")
	}
	if r.Stale(t0.Add(time.Hour), 2*time.Hour) {
		t.Error("stale within forget-after")
	}
	if !r.Stale(t0.Add(2*time.Hour), 2*time.Hour) {
		t.Error("not stale at forget-after")
	}
}

func TestSweepDueOncePerInterval(t *testing.T) {
	b := setup(t)
	first, err := b.store.SweepDue(b.ctx, time.Hour)
	if err != nil || !first {
		t.Fatalf("first SweepDue = %v, %v", first, err)
	}
	again, err := b.store.SweepDue(b.ctx, time.Hour)
	if err != nil || again {
		t.Fatalf("second SweepDue = %v, %v", again, err)
	}
}
