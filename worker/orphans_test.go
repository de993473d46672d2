package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
	"github.com/capcheck/capcheck/worker"
)

// The messages of a takeover: of a lapsed hold, of a task with no hold.
const (
	tookHold  = "chunk of a worker gone taken over"
	tookLease = "chunk task of a worker gone before it held the chunk taken over"
)

// orphanBound is how soon a chunk task whose worker died before holding it
// must go on, far below asynq's own recovery (60 - 120 s) yet ample on a
// loaded machine for the ~2 s it takes.
const orphanBound = 30 * time.Second

// another starts a second worker on b's job, with its own API and metrics.
func (b *bundle) another(t *testing.T, api *fakeAPI, cfg worker.Config) *worker.Worker {
	t.Helper()
	cfg.OutDir = b.out
	cfg.Logger = cmpOr(cfg.Logger, testLogger(t))
	cfg.Metrics = worker.NewMetrics(prometheus.NewRegistry())
	w, err := worker.New(b.store, api, &fakeLimiter{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	return w
}

// enqueueChunks enqueues a task of each of b's chunks.
func (b *bundle) enqueueChunks(t *testing.T) {
	t.Helper()
	client := asynq.NewClientFromRedisClient(b.store.Redis())
	for i := range b.sizes {
		if _, err := client.Enqueue(tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: i})); err != nil {
			t.Fatal(err)
		}
	}
}

// waitDone waits for b's job to be done, within orphanBound of from.
func (b *bundle) waitDone(t *testing.T, from time.Time) {
	t.Helper()
	for {
		j := b.jobRecord(t)
		if j.State == jobstore.Done {
			t.Logf("job done %s after the worker's end", time.Since(from).Round(time.Millisecond))
			return
		}
		if time.Since(from) > orphanBound {
			t.Fatalf("job %s %s after its worker died, want done (asynq would give the task back only after 60 s)", j.State, orphanBound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sentOnce fails the test unless the calls sent each of b's numbers once.
func (b *bundle) sentOnce(t *testing.T, calls ...[][]string) {
	t.Helper()
	sent := map[string]int{}
	for _, cs := range calls {
		for _, c := range cs {
			for _, n := range c {
				sent[n]++
			}
		}
	}
	rows := 0
	for _, n := range b.sizes {
		rows += n
	}
	for row := 1; row <= rows; row++ {
		if sent[number(row)] != 1 {
			t.Errorf("%s sent %d times, want once", number(row), sent[number(row)])
		}
	}
}

// TestChunkTaskOfAWorkerGoneBeforeItsHoldIsTakenOver: a worker stalls for
// good after asynq handed it a chunk task and before it held the chunk (as
// one SIGKILLed there: no hold names the chunk); another worker takes the
// chunk over within seconds. When the stalled run goes on after all, it
// finds the chunk held by the takeover and sends nothing.
func TestChunkTaskOfAWorkerGoneBeforeItsHoldIsTakenOver(t *testing.T) {
	logs := newLogSeen(t)
	b := setup(t, worker.Config{BatchSize: 10, Concurrency: 1, Logger: logs.Logger()}, true, 30)
	stalled, unstall := make(chan time.Time, 1), make(chan struct{})
	b.w.StallBeforeHold(func(ctx context.Context) {
		stalled <- time.Now()
		select {
		case <-unstall:
		case <-ctx.Done():
		}
	})
	b.enqueueChunks(t)
	if err := b.w.Start(); err != nil {
		t.Fatal(err)
	}
	died := receive(t, "the chunk task handed to the first worker", stalled)
	inTakeover, goOn := make(chan struct{}), make(chan struct{})
	api := &fakeAPI{fn: func(i int, _ []string) capapi.Result {
		if i == 0 {
			close(inTakeover)
			<-goOn
		}
		return accepted
	}}
	b.another(t, api, worker.Config{BatchSize: 10, Logger: logs.Logger()})
	select {
	case <-inTakeover:
		t.Logf("takeover's first call %s after the stall", time.Since(died).Round(time.Millisecond))
	case <-time.After(orphanBound):
		t.Fatalf("no takeover of the stalled worker's chunk within %s", orphanBound)
	}
	// The stalled run goes on while the takeover holds the chunk.
	close(unstall)
	waitUntil(t, "the stalled run skipped", func() bool { return counter(t, b.reg, "capcheck_chunks_total", "stale") >= 1 })
	close(goOn)
	b.waitDone(t, died)
	if n := len(b.api.Calls()); n != 0 {
		t.Errorf("the stalled run sent %d calls, want none", n)
	}
	b.sentOnce(t, api.Calls())
	if n := logs.Seen(tookLease); n != 1 {
		t.Errorf("%d takeovers logged, want 1", n)
	}
}

// TestChunkTaskLeasedWithNoHoldIsTakenOverOnce: a chunk task that asynq
// handed to a worker that died at once (its lease, and no hold) is taken
// over by one of the workers that see it, and logged once.
func TestChunkTaskLeasedWithNoHoldIsTakenOverOnce(t *testing.T) {
	logs := newLogSeen(t)
	b := setup(t, worker.Config{BatchSize: 10, Logger: logs.Logger()}, true, 20, 20)
	b.api.fn = func(int, []string) capapi.Result { return accepted }
	b.enqueueChunks(t)
	// asynq's hand-over of chunk 0 (its dequeue script), to a worker that
	// never holds it.
	id := tasks.Chunk{Job: b.job, Chunk: 0}.ID()
	handOver := redis.NewScript(`
redis.call('LREM', KEYS[1], 0, ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[4], 'state', 'active')
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 0`)
	q := "asynq:{" + tasks.Queue + "}:"
	died := time.Now()
	keys := []string{q + "pending", q + "active", q + "lease", q + "t:" + id}
	if err := handOver.Run(b.ctx, b.store.Redis(), keys, id, died.Add(30*time.Second).Unix()).Err(); err != nil {
		t.Fatal(err)
	}
	api2 := &fakeAPI{}
	if err := b.w.Start(); err != nil {
		t.Fatal(err)
	}
	b.another(t, api2, worker.Config{BatchSize: 10, Logger: logs.Logger()})
	b.waitDone(t, died)
	b.sentOnce(t, b.api.Calls(), api2.Calls())
	if n := logs.Seen(tookLease); n != 1 {
		t.Errorf("%d takeovers logged, want 1", n)
	}
}

// TestOrdinaryRunsAreNotTakenOver: workers that hold and release their
// chunks as they run take none over, however long the runs.
func TestOrdinaryRunsAreNotTakenOver(t *testing.T) {
	logs := newLogSeen(t)
	sizes := make([]int, 48)
	for i := range sizes {
		sizes[i] = 30
	}
	cfg := worker.Config{BatchSize: 10, Concurrency: 4, CallsInFlight: 4, Logger: logs.Logger()}
	b := setup(t, cfg, true, sizes...)
	slow := func(int, []string) capapi.Result { time.Sleep(300 * time.Millisecond); return accepted }
	b.api.fn = slow
	b.enqueueChunks(t)
	if err := b.w.Start(); err != nil {
		t.Fatal(err)
	}
	apis := []*fakeAPI{{fn: slow}, {fn: slow}}
	for _, api := range apis {
		b.another(t, api, cfg)
	}
	start := time.Now()
	waitState(t, b, jobstore.Done)
	t.Logf("job done in %s", time.Since(start).Round(time.Millisecond))
	b.sentOnce(t, b.api.Calls(), apis[0].Calls(), apis[1].Calls())
	if n, m := logs.Seen(tookLease), logs.Seen(tookHold); n+m != 0 {
		t.Errorf("%d + %d takeovers logged, want none", n, m)
	}
}

// TestTakeoverEnqueuedAlreadyIsNotLogged: a lapsed hold whose takeover is
// queued already (by the look at the leases) is not taken over twice.
func TestTakeoverEnqueuedAlreadyIsNotLogged(t *testing.T) {
	logs := newLogSeen(t)
	b := setup(t, worker.Config{BatchSize: 10, Logger: logs.Logger()}, true, 20)
	b.api.fn = func(int, []string) capapi.Result { return accepted }
	dead := tasks.Chunk{Job: b.job, Chunk: 0}
	retake := dead
	retake.Retake = 1
	if _, err := asynq.NewClientFromRedisClient(b.store.Redis()).Enqueue(tasks.NewChunk(retake)); err != nil {
		t.Fatal(err)
	}
	// The dead run's hold, lapsed already.
	payload, _ := json.Marshal(dead)
	run := jobstore.Run{Chunk: b.job + "/0/0", Member: "deadworker " + string(payload)}
	if ok, err := b.store.TakeRun(b.ctx, 0, run); err != nil || !ok {
		t.Fatalf("holding the dead worker's run: %v, %v", ok, err)
	}
	// The queued takeover runs once the worker's tick claimed the hold.
	b.w.StallBeforeHold(func(ctx context.Context) {
		for ctx.Err() == nil && b.store.Redis().ZCard(ctx, "capcheck:{running}").Val() > 0 {
			time.Sleep(5 * time.Millisecond)
		}
	})
	if err := b.w.Start(); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, jobstore.Done)
	if n := logs.Seen(tookHold); n != 0 {
		t.Errorf("%d takeovers logged, want none (it was enqueued already)", n)
	}
	b.sentOnce(t, b.api.Calls())
}
