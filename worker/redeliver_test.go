package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
	"github.com/capcheck/capcheck/worker"
)

// TestRedeliveredChunkHeldByARunThatLosesItsLease: after a Redis outage
// asynq re-delivers a chunk task whose lease lapsed while the run it lapsed
// under still holds the chunk; that run then ends unsettled, its lease lost
// (asynq ignores what it returns). The re-delivered run, which found the
// chunk held, must keep the task until the chunk is settled: the job
// finishes. It was dropped, and the job hung with its chunk open and no
// task.
func TestRedeliveredChunkHeldByARunThatLosesItsLease(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, Concurrency: 2}, true, 30)
	inCall, lost := make(chan struct{}), make(chan struct{})
	b.api.fn = func(i int, _ []string) capapi.Result {
		if i == 0 {
			close(inCall)
			<-lost
			return transient
		}
		return accepted
	}
	if err := b.w.Start(); err != nil {
		t.Fatal(err)
	}
	task := tasks.Chunk{Job: b.job, Chunk: 0}

	// The holder: the run whose lease lapses during the outage.
	ctx, lose := context.WithCancelCause(b.ctx)
	holder := make(chan error, 1)
	go func() { holder <- b.w.ProcessTask(ctx, tasks.NewChunk(task)) }()
	receive(t, "the holder's first call", inCall)

	// asynq re-delivers its task: that run finds the chunk held.
	client := asynq.NewClientFromRedisClient(b.store.Redis())
	if _, err := client.Enqueue(tasks.NewChunk(task)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the re-delivered run found the chunk held", func() bool {
		return counter(t, b.reg, "capcheck_chunks_total", "stale") >= 1
	})

	// The holder loses its lease and ends with the chunk unsettled.
	from := time.Now()
	lose(asynq.ErrLeaseExpired)
	close(lost)
	if err := receive(t, "the holder's end", holder); err == nil {
		t.Fatal("the holder settled the chunk; want it ended unsettled")
	}
	if j := b.jobRecord(t); j.State == jobstore.Done {
		t.Fatalf("job %s before the re-delivered task ran again", j.State)
	}
	b.waitDone(t, from)
	for k, o := range b.settled(t, 0) {
		if o.Status != jobstore.Accepted {
			t.Fatalf("entry %d: %+v, want accepted", k, o)
		}
	}
}
