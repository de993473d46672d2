package jobstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { redistest.Main(m) }

type bundle struct {
	ctx   context.Context
	store *jobstore.Store
	id    string
}

func setup(t *testing.T) bundle {
	t.Helper()
	t.Parallel()
	s := jobstore.New(redistest.Shared(t).Client(t))
	return bundle{ctx: context.Background(), store: s, id: redistest.NewPrefix(t)}
}

// enqueued creates a job with the given chunks, each of n entries, enqueued.
func (b bundle) enqueued(t *testing.T, chunks, n int) {
	t.Helper()
	if _, _, err := b.store.CreateJob(b.ctx, jobstore.Spec{ID: b.id, Input: "in.csv", Fingerprint: "fp", ChunkSize: n}); err != nil {
		t.Fatal(err)
	}
	row := int64(0)
	for i := range chunks {
		entries := make([]jobstore.Entry, n)
		for k := range entries {
			row++
			entries[k] = jobstore.Entry{Row: row, Number: "+1415555" + padded(row), Input: "x"}
		}
		if err := b.store.PutChunk(b.ctx, b.id, i, entries); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.store.FinishEnqueue(b.ctx, b.id, jobstore.Counts{Rows: row, Valid: row}, chunks, 0); err != nil {
		t.Fatal(err)
	}
}

// finalize finalizes the job's generation 0, every chunk of it finished.
func (b bundle) finalize(t *testing.T) {
	t.Helper()
	if ok, err := b.store.BeginFinalize(b.ctx, b.id, 0); err != nil || !ok {
		t.Fatalf("BeginFinalize = %v, %v", ok, err)
	}
	if _, err := b.store.EndFinalize(b.ctx, b.id, 0); err != nil {
		t.Fatal(err)
	}
}

func padded(n int64) string { return fmt.Sprintf("%04d", n) }

func TestCreateJob(t *testing.T) {
	b := setup(t)
	spec := jobstore.Spec{ID: b.id, Input: "in.csv", Fingerprint: "fp1", ChunkSize: 1000}
	j, created, err := b.store.CreateJob(b.ctx, spec)
	if err != nil || !created || j.State != jobstore.Enqueuing || j.Input != "in.csv" {
		t.Fatalf("CreateJob = %+v, %v, %v", j, created, err)
	}
	if _, created, err := b.store.CreateJob(b.ctx, spec); err != nil || created {
		t.Fatalf("second CreateJob: created=%v err=%v, want existing job", created, err)
	}
	spec.Fingerprint = "fp2"
	if _, _, err := b.store.CreateJob(b.ctx, spec); !errors.Is(err, jobstore.ErrSpecMismatch) {
		t.Fatalf("CreateJob with other input: err = %v, want ErrSpecMismatch", err)
	}
	if _, _, err := b.store.CreateJob(b.ctx, jobstore.Spec{ID: "a{b}"}); err == nil {
		t.Fatal("CreateJob accepted an ID with braces")
	}
	if _, err := b.store.Job(b.ctx, b.id+"-nope"); !errors.Is(err, jobstore.ErrNotFound) {
		t.Fatalf("Job(unknown) err = %v, want ErrNotFound", err)
	}
}

func TestRecordAndFinish(t *testing.T) {
	b := setup(t)
	b.enqueued(t, 2, 4)
	got, err := b.store.Chunk(b.ctx, b.id, 1)
	if err != nil || len(got) != 4 || got[0].Row != 5 {
		t.Fatalf("Chunk(1) = %+v, %v", got, err)
	}
	rec := func(i int, o jobstore.Outcome, c jobstore.Counters) {
		t.Helper()
		if err := b.store.Record(b.ctx, b.id, 0, i, o, c); err != nil {
			t.Fatal(err)
		}
	}
	rec(0, jobstore.Outcome{Lo: 0, Hi: 4, Split: true, Attempts: 1}, jobstore.Counters{Requests: 1})
	rec(0, jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Accepted, Attempts: 2}, jobstore.Counters{Requests: 1, Accepted: 2})
	rec(0, jobstore.Outcome{Lo: 2, Hi: 4, Status: jobstore.Rejected, Code: "RBC529", Attempts: 2}, jobstore.Counters{Requests: 1, Rejected: 2})
	outs, err := b.store.Outcomes(b.ctx, b.id, 0)
	if err != nil || len(outs) != 3 || outs[2].Code != "RBC529" {
		t.Fatalf("Outcomes = %+v, %v", outs, err)
	}
	if all, err := b.store.FinishChunk(b.ctx, b.id, 0, 0, 4); err != nil || all {
		t.Fatalf("FinishChunk(0) = %v, %v; want not all done", all, err)
	}
	if ok, _ := b.store.BeginFinalize(b.ctx, b.id, 0); ok {
		t.Fatal("BeginFinalize succeeded with a chunk pending")
	}
	rec(1, jobstore.Outcome{Lo: 0, Hi: 4, Status: jobstore.Failed, Message: "503"}, jobstore.Counters{Requests: 5, Retries: 4, Failed: 4})
	all, err := b.store.FinishChunk(b.ctx, b.id, 0, 1, 4)
	if err != nil || !all {
		t.Fatalf("FinishChunk(1) = %v, %v; want all done", all, err)
	}
	// A re-delivered chunk task finishing again still reports all done, so a
	// crash before the finalize task was enqueued is recovered.
	if all, _ := b.store.FinishChunk(b.ctx, b.id, 0, 1, 4); !all {
		t.Fatal("second FinishChunk(1) says not all done")
	}
	for range 2 { // a re-delivered finalize task begins again
		if ok, err := b.store.BeginFinalize(b.ctx, b.id, 0); err != nil || !ok {
			t.Fatalf("BeginFinalize = %v, %v", ok, err)
		}
	}
	if st, err := b.store.EndFinalize(b.ctx, b.id, 0); err != nil || st != jobstore.Done {
		t.Fatalf("EndFinalize = %v, %v", st, err)
	}
	if ok, _ := b.store.BeginFinalize(b.ctx, b.id, 0); ok {
		t.Fatal("BeginFinalize succeeded on a done job")
	}
	j, err := b.store.Job(b.ctx, b.id)
	if err != nil {
		t.Fatal(err)
	}
	want := jobstore.Counters{Accepted: 2, Rejected: 2, Failed: 4, Requests: 8, Retries: 4}
	if diff := cmp.Diff(want, j.Counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if j.State != jobstore.Done || j.ChunksDone != 2 || j.FinishedAt.IsZero() || j.StartedAt.IsZero() {
		t.Errorf("job = %+v", j)
	}
	if rps, err := b.store.Rate(b.ctx, j); err != nil || rps < 0 {
		t.Errorf("Rate = %v, %v", rps, err)
	}

	// Re-drive: the failed chunk comes back, the accepted/rejected one does not.
	gen, chunks, err := b.store.Redrive(b.ctx, b.id)
	if err != nil || gen != 1 || !cmp.Equal(chunks, []int{1}) {
		t.Fatalf("Redrive = %d, %v, %v; want gen 1, chunks [1]", gen, chunks, err)
	}
	outs, _ = b.store.Outcomes(b.ctx, b.id, 1)
	if len(jobstore.Pending(4, 100, outs)) != 1 {
		t.Errorf("after Redrive chunk 1 pending = %v, want the whole chunk", jobstore.Pending(4, 100, outs))
	}
	if all, err := b.store.FinishRedrive(b.ctx, b.id); err != nil || all {
		t.Fatalf("FinishRedrive = %v, %v", all, err)
	}
	j, _ = b.store.Job(b.ctx, b.id)
	if j.State != jobstore.Enqueued || j.Failed != 0 || j.Gen != 1 || j.ChunksDone != 1 {
		t.Errorf("after re-drive job = %+v", j)
	}
	if ok, _ := b.store.BeginFinalize(b.ctx, b.id, 0); ok {
		t.Error("finalize of the old generation began after a re-drive")
	}
}

func TestAbortEndsFailed(t *testing.T) {
	b := setup(t)
	b.enqueued(t, 1, 1)
	if err := b.store.Abort(b.ctx, b.id, "API refused the key (401)"); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Abort(b.ctx, b.id, "second reason"); err != nil {
		t.Fatal(err)
	}
	if r, _ := b.store.Aborted(b.ctx, b.id); r != "API refused the key (401)" {
		t.Errorf("Aborted = %q, want the first reason", r)
	}
	if err := b.store.Record(b.ctx, b.id, 0, 0, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Failed}, jobstore.Counters{Failed: 1}); err != nil {
		t.Fatal(err)
	}
	if all, _ := b.store.FinishChunk(b.ctx, b.id, 0, 0, 1); !all {
		t.Fatal("not all done")
	}
	if _, err := b.store.BeginFinalize(b.ctx, b.id, 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.store.EndFinalize(b.ctx, b.id, 0); st != jobstore.FailedJob {
		t.Errorf("EndFinalize = %v, want failed", st)
	}
	// Retrying an aborted job clears the abort.
	if _, _, err := b.store.Redrive(b.ctx, b.id); err != nil {
		t.Fatal(err)
	}
	if r, _ := b.store.Aborted(b.ctx, b.id); r != "" {
		t.Errorf("after Redrive Aborted = %q", r)
	}
}

func TestRedriveNothing(t *testing.T) {
	b := setup(t)
	b.enqueued(t, 1, 1)
	if _, _, err := b.store.Redrive(b.ctx, b.id); err == nil {
		t.Fatal("Redrive of a running job succeeded")
	}
	if err := b.store.Record(b.ctx, b.id, 0, 0, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Accepted}, jobstore.Counters{Accepted: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.FinishChunk(b.ctx, b.id, 0, 0, 1); err != nil {
		t.Fatal(err)
	}
	b.finalize(t)
	if _, _, err := b.store.Redrive(b.ctx, b.id); !errors.Is(err, jobstore.ErrNothingToRedrive) {
		t.Fatalf("Redrive with nothing failed: err = %v", err)
	}
}

func TestFinishEnqueueWithNoChunks(t *testing.T) {
	b := setup(t)
	if _, _, err := b.store.CreateJob(b.ctx, jobstore.Spec{ID: b.id, Fingerprint: "fp", ChunkSize: 10}); err != nil {
		t.Fatal(err)
	}
	all, err := b.store.FinishEnqueue(b.ctx, b.id, jobstore.Counts{Rows: 3, Invalid: 3}, 0, 1)
	if err != nil || !all {
		t.Fatalf("FinishEnqueue with 0 chunks = %v, %v; want all done", all, err)
	}
}

func TestRejects(t *testing.T) {
	b := setup(t)
	if err := b.store.PutRejects(b.ctx, b.id, 1, []byte("3,x,invalid\n")); err != nil {
		t.Fatal(err)
	}
	if err := b.store.PutRejects(b.ctx, b.id, 0, []byte("1,y,missing\n")); err != nil {
		t.Fatal(err)
	}
	var got string
	err := b.store.Rejects(b.ctx, b.id, 2, func(p []byte) error { got += string(p); return nil })
	if err != nil || got != "1,y,missing\n3,x,invalid\n" {
		t.Fatalf("Rejects = %q, %v", got, err)
	}

	// Stored deflated: the lines repeat their text. A blob stored plain
	// (before) reads as it is.
	var big strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&big, "%d,+91 98765 %05d,duplicate of row %d\n", 2*i+2, i, 2*i+1)
	}
	if err := b.store.PutRejects(b.ctx, b.id, 0, []byte(big.String())); err != nil {
		t.Fatal(err)
	}
	rdb := b.store.Redis()
	if n, _ := rdb.StrLen(b.ctx, jobstore.RejectsKeyForTest(b.id, 0)).Result(); n*3 > int64(big.Len()) {
		t.Errorf("rejects blob of %d bytes stored in %d", big.Len(), n)
	}
	if err := rdb.Set(b.ctx, jobstore.RejectsKeyForTest(b.id, 1), "7,z,invalid\n", 0).Err(); err != nil {
		t.Fatal(err)
	}
	got = ""
	err = b.store.Rejects(b.ctx, b.id, 2, func(p []byte) error { got += string(p); return nil })
	if err != nil || got != big.String()+"7,z,invalid\n" {
		t.Fatalf("Rejects = %d bytes, %v; want the blobs back", len(got), err)
	}
}

func TestLock(t *testing.T) {
	b := setup(t)
	rdb := redistest.Shared(t).Client(t)
	key := "capcheck:job:{" + b.id + "}:lock"
	l, err := b.store.Lock(b.ctx, b.id, "host:1", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The holder refreshes the TTL: wait until it is seen going back up.
	low := time.Duration(1 << 62)
	for deadline := time.Now().Add(20 * time.Second); ; {
		ttl, err := rdb.PTTL(b.ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 {
			t.Fatalf("lock key %s has TTL %v: not held", key, ttl)
		}
		if ttl > low {
			break
		}
		low = ttl
		if time.Now().After(deadline) {
			t.Fatalf("the lock's TTL was never refreshed (lowest %v)", low)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := b.store.Lock(b.ctx, b.id, "host:2", time.Second); !errors.Is(err, jobstore.ErrLocked) {
		t.Fatalf("second Lock: err = %v, want ErrLocked", err)
	}
	if err := l.Release(b.ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(b.ctx); err != nil {
		t.Fatal(err)
	}
	l2, err := b.store.Lock(b.ctx, b.id, "host:2", time.Second)
	if err != nil {
		t.Fatalf("Lock after Release: %v", err)
	}
	if err := l2.Release(b.ctx); err != nil {
		t.Fatal(err)
	}
}

func TestListJobs(t *testing.T) {
	b := setup(t)
	if _, _, err := b.store.CreateJob(b.ctx, jobstore.Spec{ID: b.id, Fingerprint: "fp", ChunkSize: 10}); err != nil {
		t.Fatal(err)
	}
	jobs, err := b.store.ListJobs(b.ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.ID == b.id {
			return
		}
	}
	t.Errorf("ListJobs does not list %s", b.id)
}

func TestExpire(t *testing.T) {
	b := setup(t)
	b.enqueued(t, 2, 1)
	rdb := b.store.Redis()
	if err := b.store.Record(b.ctx, b.id, 0, 0, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Failed}, jobstore.Counters{Failed: 1, Requests: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Record(b.ctx, b.id, 0, 1, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Accepted}, jobstore.Counters{Accepted: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := b.store.FinishChunk(b.ctx, b.id, 0, i, 1); err != nil {
			t.Fatal(err)
		}
	}
	b.finalize(t)
	if err := b.store.Expire(b.ctx, b.id, time.Hour); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(b.ctx, "capcheck:job:{"+b.id+"*").Result()
	if err != nil || len(keys) < 6 {
		t.Fatalf("job keys = %v, %v", keys, err)
	}
	for _, k := range keys {
		if ttl := rdb.TTL(b.ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("TTL of %s = %v, want up to 1h", k, ttl)
		}
	}
	// A re-drive keeps the job for as long as it runs.
	if _, _, err := b.store.Redrive(b.ctx, b.id); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		// -2: gone (the failed outcomes of chunk 0 were its whole list).
		if ttl := rdb.TTL(b.ctx, k).Val(); ttl != -1 && ttl != -2 {
			t.Errorf("after Redrive TTL of %s = %v, want none", k, ttl)
		}
	}
	// An expired job drops out of the list.
	if err := rdb.Del(b.ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	jobs, _ := b.store.ListJobs(b.ctx, 1000)
	for _, j := range jobs {
		if j.ID == b.id {
			t.Error("ListJobs lists an expired job")
		}
	}
	if rdb.ZScore(b.ctx, "capcheck:jobs", b.id).Err() == nil {
		t.Error("the expired job is still in capcheck:jobs")
	}
}

func TestRecordIsFenced(t *testing.T) {
	b := setup(t)
	b.enqueued(t, 1, 4)
	rec := func(gen int, o jobstore.Outcome, c jobstore.Counters) error {
		return b.store.Record(b.ctx, b.id, gen, 0, o, c)
	}
	if err := rec(0, jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Accepted, Attempts: 1}, jobstore.Counters{Requests: 1, Accepted: 2}); err != nil {
		t.Fatal(err)
	}
	// A second run of the chunk (a re-delivered task whose first run was
	// alive, with another batch size) settles [1,3): entry 1 is settled
	// already and stays accepted; entry 2 is settled and counted failed.
	if err := rec(0, jobstore.Outcome{Lo: 1, Hi: 3, Status: jobstore.Failed, Attempts: 1}, jobstore.Counters{Requests: 1, Failed: 2}); err != nil {
		t.Fatal(err)
	}
	// An outcome of nothing new is dropped; its call still counts.
	if err := rec(0, jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Rejected}, jobstore.Counters{Requests: 1, Rejected: 2}); err != nil {
		t.Fatal(err)
	}
	// A task of another generation records nothing at all.
	err := rec(1, jobstore.Outcome{Lo: 3, Hi: 4, Status: jobstore.Accepted}, jobstore.Counters{Requests: 1, Accepted: 1})
	if !errors.Is(err, jobstore.ErrStale) {
		t.Fatalf("Record of generation 1 on a job of generation 0: err = %v, want ErrStale", err)
	}
	if _, err := b.store.FinishChunk(b.ctx, b.id, 1, 0, 4); !errors.Is(err, jobstore.ErrStale) {
		t.Fatalf("FinishChunk of generation 1: err = %v, want ErrStale", err)
	}
	// Entry 3 has no outcome: the chunk is not done.
	if _, err := b.store.FinishChunk(b.ctx, b.id, 0, 0, 4); !errors.Is(err, jobstore.ErrUnsettled) {
		t.Fatalf("FinishChunk with entry 3 unsettled: err = %v, want ErrUnsettled", err)
	}
	outs, _ := b.store.Outcomes(b.ctx, b.id, 0)
	per, all := jobstore.Settle(4, outs)
	if all || per[0].Status != jobstore.Accepted || per[1].Status != jobstore.Accepted || per[2].Status != jobstore.Failed {
		t.Errorf("settled = %+v (all %v)", per, all)
	}
	j, _ := b.store.Job(b.ctx, b.id)
	want := jobstore.Counters{Accepted: 2, Failed: 1, Requests: 3}
	if diff := cmp.Diff(want, j.Counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if err := rec(0, jobstore.Outcome{Lo: 3, Hi: 4, Status: jobstore.Accepted}, jobstore.Counters{Requests: 1, Accepted: 1}); err != nil {
		t.Fatal(err)
	}
	if all, err := b.store.FinishChunk(b.ctx, b.id, 0, 0, 4); err != nil || !all {
		t.Fatalf("FinishChunk when settled = %v, %v", all, err)
	}
}

func TestRedriveAgainAfterAnInterruptedOne(t *testing.T) {
	b := setup(t)
	b.enqueued(t, 3, 1)
	for i, st := range []jobstore.Status{jobstore.Failed, jobstore.Accepted, jobstore.Failed} {
		if err := b.store.Record(b.ctx, b.id, 0, i, jobstore.Outcome{Lo: 0, Hi: 1, Status: st}, jobstore.Counters{}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.FinishChunk(b.ctx, b.id, 0, i, 1); err != nil {
			t.Fatal(err)
		}
	}
	b.finalize(t)
	gen, chunks, err := b.store.Redrive(b.ctx, b.id)
	if err != nil || gen != 1 || !cmp.Equal(chunks, []int{0, 2}) {
		t.Fatalf("Redrive = %d, %v, %v", gen, chunks, err)
	}
	// The retry process died before enqueueing: running it again must give
	// the same chunks, not none.
	gen, chunks, err = b.store.Redrive(b.ctx, b.id)
	if err != nil || gen != 1 || !cmp.Equal(chunks, []int{0, 2}) {
		t.Fatalf("second Redrive = %d, %v, %v; want gen 1 and chunks [0 2] again", gen, chunks, err)
	}
	j, _ := b.store.Job(b.ctx, b.id)
	if !j.Redriving || j.State != jobstore.Enqueuing {
		t.Errorf("job during a re-drive = %+v", j)
	}
	// The re-driven entries are no longer settled; the kept ones still are.
	if err := b.store.Record(b.ctx, b.id, 1, 0, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Accepted}, jobstore.Counters{Accepted: 1}); err != nil {
		t.Fatal(err)
	}
	if outs, _ := b.store.Outcomes(b.ctx, b.id, 0); len(outs) != 1 || outs[0].Status != jobstore.Accepted {
		t.Errorf("chunk 0 after re-drive = %+v", outs)
	}
	if all, err := b.store.FinishChunk(b.ctx, b.id, 1, 0, 1); err != nil || all {
		t.Errorf("FinishChunk(0) = %v, %v; want done, not all", all, err)
	}
	if err := b.store.Record(b.ctx, b.id, 1, 1, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Rejected}, jobstore.Counters{Rejected: 1}); err != nil {
		t.Fatal(err)
	}
	if outs, _ := b.store.Outcomes(b.ctx, b.id, 1); len(outs) != 1 {
		t.Errorf("chunk 1 (kept accepted) took a second outcome: %+v", outs)
	}
}

// TestRate: a running job's rate is over the last minute (or the seconds
// since its first call when fewer); a finished job's is over the seconds in
// which it sent requests.
func TestRate(t *testing.T) {
	b := setup(t)
	b.enqueued(t, 1, 1)
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	b.store.SetClock(func() time.Time { return now })
	for _, at := range []struct {
		sec int64
		n   int64
	}{{0, 10}, {1, 20}, {3, 30}} {
		now = t0.Add(time.Duration(at.sec) * time.Second)
		if err := b.store.Add(b.ctx, b.id, jobstore.Counters{Requests: at.n}); err != nil {
			t.Fatal(err)
		}
	}
	j, err := b.store.Job(b.ctx, b.id)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		now   time.Time
		state jobstore.State
		want  float64
	}{
		{"young: over the whole seconds since the first call", t0.Add(4 * time.Second), jobstore.Enqueued, 60.0 / 4},
		{"over the last minute", t0.Add(62 * time.Second), jobstore.Enqueued, 30.0 / 60},
		{"finished: over the seconds it sent in", t0.Add(time.Hour), jobstore.Done, 60.0 / 3},
	} {
		now = tt.now
		jj := *j
		jj.State = tt.state
		got, err := b.store.Rate(b.ctx, &jj)
		if err != nil || got != tt.want {
			t.Errorf("%s: Rate = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

// RecordAll writes its outcomes in order, as Records one by one would, and
// an outcome it cannot record (a stale generation) fails alone.
func TestRecordAll(t *testing.T) {
	b := setup(t)
	b.enqueued(t, 2, 4)
	recs := []jobstore.Record{
		{Job: b.id, Chunk: 0, Outcome: jobstore.Outcome{Lo: 0, Hi: 4, Split: true, Attempts: 1}, Calls: jobstore.Counters{Requests: 1}},
		{Job: b.id, Chunk: 1, Outcome: jobstore.Outcome{Lo: 0, Hi: 4, Status: jobstore.Accepted, Attempts: 1}, Calls: jobstore.Counters{Requests: 1}},
		{Job: b.id, Gen: 1, Chunk: 0, Outcome: jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Accepted, Attempts: 2}, Calls: jobstore.Counters{Requests: 1}},
		{Job: b.id, Chunk: 0, Outcome: jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Accepted, Attempts: 2}, Calls: jobstore.Counters{Requests: 1}},
		{Job: b.id, Chunk: 0, Outcome: jobstore.Outcome{Lo: 2, Hi: 4, Status: jobstore.Rejected, Code: "RBC529", Attempts: 2}, Calls: jobstore.Counters{Requests: 1}},
	}
	errs := b.store.RecordAll(b.ctx, recs)
	if len(errs) != len(recs) {
		t.Fatalf("RecordAll = %v, want an error per record", errs)
	}
	for i, err := range errs {
		if stale := i == 2; stale != errors.Is(err, jobstore.ErrStale) || (!stale && err != nil) {
			t.Errorf("record %d: %v", i, err)
		}
	}
	outs, err := b.store.Outcomes(b.ctx, b.id, 0)
	if err != nil || len(outs) != 3 || !outs[0].Split || outs[1].Hi != 2 || outs[2].Code != "RBC529" {
		t.Fatalf("Outcomes(0) = %+v, %v", outs, err)
	}
	if errs := b.store.RecordAll(b.ctx, recs[1:2]); errs != nil {
		t.Errorf("RecordAll of one = %v", errs)
	}
	j, err := b.store.Job(b.ctx, b.id)
	if err != nil {
		t.Fatal(err)
	}
	// The repeated record of chunk 1 settles nothing new; its call counts.
	want := jobstore.Counters{Accepted: 6, Rejected: 2, Requests: 5}
	if diff := cmp.Diff(want, j.Counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}
