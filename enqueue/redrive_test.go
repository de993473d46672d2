package enqueue

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
)

// TestRedrive finishes a job with chunk 0 accepted and the others failed:
// Redrive enqueues the failed chunks again under generation 1, once.
func TestRedrive(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	cfg := b.config(b.writeList(t, "l.csv", 100))
	cfg.JobID, cfg.ChunkSize = "redrive-1", 10
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, n := res.JobID, res.Counts.Chunks
	if n < 3 {
		t.Fatalf("%d chunks: the test needs 3 or more", n)
	}
	if _, err := Redrive(ctx, b.store, b.client, id); err == nil {
		t.Fatal("Redrive of a job not finished succeeded")
	}
	for i := range n {
		entries, err := b.store.Chunk(ctx, id, i)
		if err != nil {
			t.Fatal(err)
		}
		o, c := jobstore.Outcome{Lo: 0, Hi: len(entries), Status: jobstore.Failed}, jobstore.Counters{Failed: int64(len(entries))}
		if i == 0 {
			o.Status, c = jobstore.Accepted, jobstore.Counters{Accepted: int64(len(entries))}
		}
		if err := b.store.Record(ctx, id, 0, i, o, c); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.FinishChunk(ctx, id, 0, i, len(entries)); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := b.store.BeginFinalize(ctx, id, 0); err != nil || !ok {
		t.Fatalf("BeginFinalize = %v, %v", ok, err)
	}
	if st, err := b.store.EndFinalize(ctx, id, 0); err != nil || st != jobstore.Done {
		t.Fatalf("EndFinalize = %v, %v", st, err)
	}

	// Held by another process: refused, nothing done.
	lock, err := b.store.Lock(ctx, id, "another process", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Redrive(ctx, b.store, b.client, id); !errors.Is(err, jobstore.ErrLocked) {
		t.Fatalf("Redrive of a locked job: err = %v, want ErrLocked", err)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}

	done, err := Redrive(ctx, b.store, b.client, id)
	if err != nil {
		t.Fatal(err)
	}
	if done != (Redriven{Gen: 1, Chunks: n - 1}) {
		t.Errorf("Redrive = %+v, want generation 1, %d chunks", done, n-1)
	}
	ids := b.taskIDs(t)
	for i := range n {
		has := slices.Contains(ids, tasks.Chunk{Job: id, Chunk: i, Gen: 1}.ID())
		if has != (i > 0) {
			t.Errorf("chunk %d: task of generation 1 enqueued: %v", i, has)
		}
	}
	job, err := b.store.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != jobstore.Enqueued || job.Gen != 1 || job.Failed != 0 || job.Redriving {
		t.Errorf("after Redrive: %+v", job)
	}
}
