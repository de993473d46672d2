package worker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
	"github.com/capcheck/capcheck/worker"
)

// failAbort fails the pipeline that writes a job's abort (its HSETNX),
// after closing entered and returning from wait.
type failAbort struct {
	entered chan struct{}
	wait    func()
}

func (failAbort) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (failAbort) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h failAbort) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if strings.EqualFold(c.Name(), "hsetnx") {
				close(h.entered)
				h.wait()
				return errors.New("injected: Redis unavailable")
			}
		}
		return next(ctx, cmds)
	}
}

// abortNotWritten sets up a worker of Concurrency 2 over chunks of sizes
// whose 401 (the call of the first number) cannot write its abort: the
// write fails once wrote(job) holds or patience runs out (a worker that
// waits for the write never records meanwhile, so then it runs out), while
// the first two calls, in flight together, wait for the write and fail
// transiently; the calls after them are accepted.
func abortNotWritten(t *testing.T, wrote func(st *jobstore.Store, job string) bool, sizes ...int) (*bundle, *worker.Worker) {
	t.Helper()
	b := setup(t, worker.Config{BatchSize: 10, Concurrency: 2}, false, sizes...)
	rdb := b.rdb.Client(t)
	st := jobstore.New(rdb)
	h := failAbort{entered: make(chan struct{})}
	h.wait = func() {
		for deadline := time.Now().Add(patience); time.Now().Before(deadline) && !wrote(st, b.job); time.Sleep(time.Millisecond) {
		}
	}
	rdb.AddHook(h)
	w, err := worker.New(st, b.api, b.lim, worker.Config{BatchSize: 10, Concurrency: 2, OutDir: b.out,
		BackoffBase: time.Millisecond, BackoffMax: 4 * time.Millisecond,
		Logger: testLogger(t), Metrics: worker.NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	both := newBarrier(2)
	b.api.fn = func(i int, numbers []string) capapi.Result {
		if i < 2 && !both.meet() {
			t.Error("two calls never in flight")
		}
		if numbers[0] == number(1) {
			return unauth
		}
		if i < 2 {
			<-h.entered // the 401 is being written
			return transient
		}
		return accepted
	}
	return b, w
}

// A 401 whose abort cannot be written to Redis must not settle another
// lane's numbers as "not sent: job stopped": the job was not aborted.
func TestAbortNotWrittenSettlesNoOtherLane(t *testing.T) {
	b, w := abortNotWritten(t, func(st *jobstore.Store, job string) bool {
		outs, _ := st.Outcomes(context.Background(), job, 0)
		return slices.ContainsFunc(outs, func(o jobstore.Outcome) bool { return o.Lo == 10 })
	}, 20)
	err := w.ProcessTask(b.ctx, tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0}))
	t.Logf("first run: %v", err)
	if r, _ := b.store.Aborted(b.ctx, b.job); r != "" {
		t.Fatalf("job aborted %q; the write was to fail", r)
	}
	outs, _ := b.store.Outcomes(b.ctx, b.job, 0)
	for _, o := range outs {
		t.Logf("outcome %+v", o)
		if o.Lo == 10 && strings.Contains(o.Message, "job stopped") {
			t.Errorf("[10,20) settled %q while the job runs (its abort was never written)", o.Message)
		}
	}
}

// Nor does it stop the worker's other chunk of the job: its numbers are not
// recorded "not sent", the chunk is not finished as failed.
func TestAbortNotWrittenStopsNoOtherChunk(t *testing.T) {
	b, w := abortNotWritten(t, func(st *jobstore.Store, job string) bool {
		outs, _ := st.Outcomes(context.Background(), job, 1)
		return len(outs) > 0
	}, 10, 30)
	errs := make(chan error, 2)
	for i := range 2 {
		go func() { errs <- w.ProcessTask(b.ctx, tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: i})) }()
	}
	t.Logf("runs: %v, %v", <-errs, <-errs)
	if r, _ := b.store.Aborted(b.ctx, b.job); r != "" {
		t.Fatalf("job aborted %q", r)
	}
	j := b.jobRecord(t)
	t.Logf("job: failed %d accepted %d chunks done %d requests %d", j.Failed, j.Accepted, j.ChunksDone, j.Requests)
	if j.Failed != 0 {
		t.Errorf("%d numbers recorded failed (not sent: job stopped) in a job that runs", j.Failed)
	}
}
