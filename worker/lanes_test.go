package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/ratelimit"
	"github.com/capcheck/capcheck/tasks"
	"github.com/capcheck/capcheck/worker"
)

// inFlight counts the calls in flight and the most at once.
type inFlight struct {
	mu       sync.Mutex
	now, max int
}

func (f *inFlight) add(d int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now += d
	f.max = max(f.max, f.now)
}

func (f *inFlight) most() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.max
}

// barrier lets n calls on once all n have come (so they are in flight at
// once).
type barrier struct{ wg sync.WaitGroup }

func newBarrier(n int) *barrier {
	b := &barrier{}
	b.wg.Add(n)
	return b
}

// meet waits for the others; false after patience.
func (b *barrier) meet() bool {
	b.wg.Done()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(patience):
		return false
	}
}

// sortedCalls returns the API's calls in the order of their first number.
func sortedCalls(api *fakeAPI) [][]string {
	calls := api.Calls()
	slices.SortFunc(calls, func(x, y []string) int { return strings.Compare(x[0], y[0]) })
	return calls
}

// sentOnce fails the test unless the calls sent rows 1..n once each.
func sentOnce(t *testing.T, calls [][]string, n int) {
	t.Helper()
	sent := map[string]int{}
	for _, c := range calls {
		for _, x := range c {
			sent[x]++
		}
	}
	for row := 1; row <= n; row++ {
		if sent[number(row)] != 1 {
			t.Errorf("%s sent %d times, want once", number(row), sent[number(row)])
		}
	}
}

// A chunk alone on its worker keeps CallsInFlight calls in flight, and its
// calls' outcomes are recorded in the order they come.
func TestLanesSettleOutOfOrder(t *testing.T) {
	const lanes = 4
	b := setup(t, worker.Config{BatchSize: 10, CallsInFlight: lanes}, false, 80)
	fl, all := &inFlight{}, newBarrier(lanes)
	b.api.fn = func(i int, numbers []string) capapi.Result {
		fl.add(1)
		defer fl.add(-1)
		if i < lanes && !all.meet() {
			t.Errorf("call %d: %d calls never in flight at once", i, lanes)
		}
		if numbers[0] == number(1) {
			// Answered once the others sent with it are recorded.
			for deadline := time.Now().Add(patience); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if outs, err := b.store.Outcomes(b.ctx, b.job, 0); err != nil || len(outs) >= lanes-1 {
					break
				}
			}
		}
		return accepted
	}
	b.mustRun(t, 0)
	if got := fl.most(); got != lanes {
		t.Errorf("at most %d calls in flight, want %d (CallsInFlight)", got, lanes)
	}
	outs, err := b.store.Outcomes(b.ctx, b.job, 0)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(outs, func(o jobstore.Outcome) bool { return o.Lo == 0 }); i < lanes-1 {
		t.Errorf("outcomes recorded %+v: [0,10) at %d, want after the other ranges sent with it", outs, i)
	}
	sentOnce(t, b.api.Calls(), 80)
	b.wantAccepted(t, 0, 1)
	if j := b.jobRecord(t); j.Accepted != 80 || j.Requests != 8 || j.ChunksDone != 1 {
		t.Errorf("job = %+v, want 80 accepted, 8 requests, 1 chunk done", j)
	}
}

// A run that dies with two calls in flight leaves their ranges unrecorded:
// the re-delivered chunk sends them and the ranges no lane took, and
// nothing recorded before.
func TestLanesCrashWithCallsInFlight(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, CallsInFlight: 2}, false, 50)
	ctx, crash := context.WithCancel(b.ctx)
	both := newBarrier(2)
	b.api.fn = func(_ int, numbers []string) capapi.Result {
		// Two lanes: [0,10) and [10,20) are answered before a lane takes
		// [20,30) or [30,40).
		if numbers[0] != number(21) && numbers[0] != number(31) {
			return accepted
		}
		if !both.meet() {
			t.Error("[20,30) and [30,40) were never in flight at once")
		}
		crash() // the process dies with both in flight
		<-ctx.Done()
		return capapi.Result{Class: capapi.Transient, Err: context.Canceled}
	}
	if err := b.w.ProcessTask(ctx, tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0})); err == nil {
		t.Fatal("crashed run returned no error")
	}
	first := sortedCalls(b.api)
	if len(first) != 4 || first[2][0] != number(21) || first[3][0] != number(31) {
		t.Fatalf("calls before the crash: %v", first)
	}
	outs, _ := b.store.Outcomes(b.ctx, b.job, 0)
	if len(outs) != 2 {
		t.Fatalf("recorded before the crash: %+v, want the two calls answered", outs)
	}

	b.api.mu.Lock()
	b.api.calls, b.api.fn = nil, nil
	b.api.mu.Unlock()
	b.mustRun(t, 0) // re-delivered
	second := sortedCalls(b.api)
	if len(second) != 3 || second[0][0] != number(21) || second[1][0] != number(31) || second[2][0] != number(41) {
		t.Errorf("calls after the crash: %v, want [20,30) [30,40) again and [40,50)", second)
	}
	sentOnce(t, append(first[:2], second...), 50)
	b.wantAccepted(t, 0, 1)
	if j := b.jobRecord(t); j.Accepted != 50 || j.ChunksDone != 1 {
		t.Errorf("job = %+v, want 50 accepted, 1 chunk done", j)
	}
}

// A batch refused as invalid is bisected by its lane while another lane's
// call is in flight; the other batch's answer comes after the bisection.
func TestLanesBisectWhileAnotherCallInFlight(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, CallsInFlight: 2}, false, 20)
	bad := number(4)
	isolated := make(chan struct{})
	var once sync.Once
	b.api.fn = func(_ int, numbers []string) capapi.Result {
		if numbers[0] == number(11) {
			select {
			case <-isolated:
			case <-time.After(patience):
				t.Error("the bisection did not go on while [10,20) was in flight")
			}
			return accepted
		}
		if slices.Contains(numbers, bad) {
			if len(numbers) == 1 {
				once.Do(func() { close(isolated) })
			}
			r := invalid
			r.Message += ": invalid number: " + bad
			return r
		}
		return accepted
	}
	b.mustRun(t, 0)
	for k, o := range b.settled(t, 0) {
		x := number(k + 1)
		switch {
		case x == bad && (o.Status != jobstore.Rejected || o.Hi-o.Lo != 1 || !strings.Contains(o.Message, bad)):
			t.Errorf("invalid %s: %+v, want rejected alone", x, o)
		case x != bad && o.Status != jobstore.Accepted:
			t.Errorf("valid %s: %+v, want accepted", x, o)
		case k < 10 && o.Attempts < 2:
			t.Errorf("%s: attempts %d, want at least 2 (the batch, then its part)", x, o.Attempts)
		case k >= 10 && o.Attempts != 1:
			t.Errorf("%s: attempts %d, want 1", x, o.Attempts)
		}
	}
	calls := len(b.api.Calls())
	if j := b.jobRecord(t); j.Rejected != 1 || j.Accepted != 19 || j.Requests != int64(calls) || j.ChunksDone != 1 {
		t.Errorf("job = %+v, %d calls", j, calls)
	}
	b.checkRemembered(t, map[string]bool{bad: true})
}

// A 401 stops the job's calls: the calls in flight with it are answered and
// recorded, and no call is sent after it.
func TestLanesAbortAfterTheCallsInFlight(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, CallsInFlight: 3}, false, 60)
	three := newBarrier(3)
	b.api.fn = func(i int, numbers []string) capapi.Result {
		if i >= 3 {
			t.Errorf("call %d (%s...) sent after the 401", i, numbers[0])
			return accepted
		}
		if !three.meet() {
			t.Error("three calls never in flight at once")
		}
		if numbers[0] == number(1) {
			return unauth
		}
		// Answered once the 401 has stopped the job.
		for deadline := time.Now().Add(patience); ; time.Sleep(time.Millisecond) {
			if r, err := b.store.Aborted(b.ctx, b.job); err != nil || r != "" || time.Now().After(deadline) {
				break
			}
		}
		return accepted
	}
	b.mustRun(t, 0)
	if n := len(b.api.Calls()); n != 3 {
		t.Errorf("%d calls, want the 3 in flight", n)
	}
	per := b.settled(t, 0)
	for k, o := range per {
		switch {
		case k < 10 && (o.Status != jobstore.Failed || o.Attempts != 1):
			t.Fatalf("entry %d: %+v, want failed by the 401", k, o)
		case k >= 10 && k < 30 && o.Status != jobstore.Accepted:
			t.Fatalf("entry %d: %+v, want accepted (answered in flight)", k, o)
		case k >= 30 && (o.Status != jobstore.Failed || !strings.HasPrefix(o.Message, "not sent: job stopped") || o.Attempts != 0):
			t.Fatalf("entry %d: %+v, want failed, not sent", k, o)
		}
	}
	if j := b.jobRecord(t); j.Failed != 40 || j.Accepted != 20 || j.Requests != 3 || j.ChunksDone != 1 {
		t.Errorf("job = %+v, want 40 failed, 20 accepted, 3 requests, 1 chunk done", j)
	}
}

// A worker whose lanes do not wait for permits (the calls' latency bounds
// it, not the rate) adds lanes beyond Concurrency, up to CallsInFlight: a
// replica alone, or ending a job alone, sends at the rate.
func TestLanesBeyondConcurrencyWhileNoneWaits(t *testing.T) {
	const lanes = 6
	b := setup(t, worker.Config{BatchSize: 10, Concurrency: 2, CallsInFlight: lanes}, false, 400)
	fl := &inFlight{}
	b.api.fn = func(int, []string) capapi.Result {
		fl.add(1)
		defer fl.add(-1)
		time.Sleep(20 * time.Millisecond) // the API's latency, far above the worker's own time
		return accepted
	}
	b.mustRun(t, 0)
	if got := fl.most(); got != lanes {
		t.Errorf("at most %d calls in flight, want %d (CallsInFlight)", got, lanes)
	}
	sentOnce(t, sortedCalls(b.api), 400)
}

// While a worker's lanes wait for permits (the fleet's rate bounds it), it
// adds none beyond Concurrency, however many CallsInFlight allows: at the
// start of a job every replica is busy, and more lanes would only crowd
// the API when it stalls. So too with a Concurrency below laneSurplus.
func TestLanesNoMoreThanConcurrencyWhileTheyWait(t *testing.T) {
	for _, c := range []worker.Config{{Concurrency: 2, CallsInFlight: 6}, {Concurrency: 1, CallsInFlight: 4}} {
		t.Run(fmt.Sprintf("concurrency %d", c.Concurrency), func(t *testing.T) {
			c.BatchSize = 10
			b := setup(t, c, false, 60)
			b.lim.gate = make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- b.run(0) }()
			// Six ranges; a permit is given only while Concurrency lanes
			// wait for one (fewer at the end, as lanes run out of ranges),
			// so whenever a lane takes its next range the others wait.
			for k := range 6 {
				want := min(c.Concurrency, 6-k)
				waitUntil(t, "the lanes waiting for a permit", func() bool {
					now, most := b.lim.Waiting()
					if most > c.Concurrency {
						t.Fatalf("%d lanes waited for a permit at once, want at most %d (Concurrency)", most, c.Concurrency)
					}
					return now == want
				})
				b.lim.gate <- struct{}{}
			}
			if err := receive(t, "the run's end", done); err != nil {
				t.Fatal(err)
			}
			if _, most := b.lim.Waiting(); most != c.Concurrency {
				t.Errorf("at most %d lanes waited for a permit at once, want %d (Concurrency)", most, c.Concurrency)
			}
			sentOnce(t, sortedCalls(b.api), 60)
		})
	}
}

// A lane that runs out of ranges gives its place to another chunk of the
// worker at once, not one call later: a replica ending a job alone keeps
// its calls in flight between its chunks' ends.
func TestLanesMoveToAnotherChunk(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, Concurrency: 4, CallsInFlight: 4}, false, 20, 80)
	var mu sync.Mutex
	flying := map[int]int{} // chunk → calls in flight
	first, second := make(chan struct{}), make(chan struct{})
	b.api.fn = func(_ int, numbers []string) capapi.Result {
		c, gate := 0, first
		if numbers[0] >= number(21) {
			c, gate = 1, second
		}
		mu.Lock()
		flying[c]++
		mu.Unlock()
		<-gate
		mu.Lock()
		flying[c]--
		mu.Unlock()
		return accepted
	}
	var once1, once2 sync.Once
	t.Cleanup(func() { once1.Do(func() { close(first) }); once2.Do(func() { close(second) }) })
	in := func(c, n int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return flying[c] == n }
	}
	done := make(chan error, 2)
	go func() { done <- b.run(0) }()
	waitUntil(t, "chunk 0's two calls in flight", in(0, 2))
	go func() { done <- b.run(1) }()
	waitUntil(t, "chunk 1's two calls in flight (4 in all)", in(1, 2))
	once1.Do(func() { close(first) }) // chunk 0's lanes run out of ranges; chunk 1 gets them
	if err := receive(t, "chunk 0's end", done); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "chunk 1's four calls in flight, before any of its answers", in(1, 4))
	once2.Do(func() { close(second) })
	if err := receive(t, "chunk 1's end", done); err != nil {
		t.Fatal(err)
	}
	sentOnce(t, sortedCalls(b.api), 100)
}

// With the fleet limiter, lanes write their outcomes in batches while they
// wait for permits, yet no lane calls before its own outcomes are in
// Redis: when any call starts, the calls answered and not recorded are at
// most one per other lane. On the store's client, the limiter carries the
// writes in its round trips; on another, the lanes write them while next in
// its queue.
func TestLanesRecordBeforeTheirNextCall(t *testing.T) {
	t.Run("riding", func(t *testing.T) { testLanesRecordBeforeTheirNextCall(t, true) })
	t.Run("after", func(t *testing.T) { testLanesRecordBeforeTheirNextCall(t, false) })
}

func testLanesRecordBeforeTheirNextCall(t *testing.T, ride bool) {
	const lanes, size, batch = 4, 200, 5
	b := setup(t, worker.Config{BatchSize: batch, Concurrency: lanes, CallsInFlight: lanes}, false, size)
	var rdb ratelimit.Scripter = b.rdb.Client(t)
	if ride {
		rdb = b.store.Redis()
	}
	key := b.job + ":ratelimit"
	lim, err := ratelimit.New(rdb, ratelimit.Config{Key: key, Limit: ratelimit.PerSecond(2000)})
	if err != nil {
		t.Fatal(err)
	}
	rides := &countRides{key: key}
	b.store.Redis().AddHook(rides)
	defer func() {
		switch n := rides.n.Load(); {
		case ride && n == 0:
			t.Error("no outcome was written in a permit's round trip")
		case !ride && n > 0:
			t.Errorf("%d permits' round trips carried outcomes with the limiter on another client", n)
		}
	}()
	w, err := worker.New(b.store, b.api, lim, worker.Config{
		BatchSize: batch, Concurrency: lanes, CallsInFlight: lanes, OutDir: b.out,
		Logger: testLogger(t), Metrics: worker.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	var mu sync.Mutex
	answered := 0
	b.api.fn = func(i int, numbers []string) capapi.Result {
		mu.Lock()
		before := answered // answered before the outcomes are read
		mu.Unlock()
		outs, err := b.store.Outcomes(b.ctx, b.job, 0)
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		} else if unrecorded := before - len(outs); unrecorded > lanes-1 {
			t.Errorf("call %d: %d calls answered and not recorded, want at most %d (one per other lane)", i, unrecorded, lanes-1)
		}
		mu.Lock()
		answered++
		mu.Unlock()
		return accepted
	}
	if err := w.ProcessTask(b.ctx, tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0})); err != nil {
		t.Fatal(err)
	}
	b.wantAccepted(t, 0, 1)
	if got := len(b.api.Calls()); got != size/batch {
		t.Errorf("%d calls, want %d", got, size/batch)
	}
}

// countRides counts the pipelines that carry the limiter's script on key
// with other commands: outcomes written in a permit's round trip.
type countRides struct {
	key string
	n   atomic.Int64
}

func (c *countRides) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *countRides) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *countRides) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 1 && slices.ContainsFunc(cmds, func(cmd redis.Cmder) bool { return slices.Contains(cmd.Args(), any(c.key)) }) {
			c.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// A lane that ends with no range left records its outcome as it ends, while
// another lane of its run is still in a long call: an answer is not left
// unrecorded for as long as another lane's call takes.
func TestEndedLaneRecordsWhileAnotherCalls(t *testing.T) {
	const size, batch = 10, 5
	cfg := worker.Config{BatchSize: batch, Concurrency: 2, CallsInFlight: 2}
	b := setup(t, cfg, false, size)
	lim, err := ratelimit.New(b.store.Redis(), ratelimit.Config{Key: b.job + ":ratelimit", Limit: ratelimit.PerSecond(2000)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.OutDir, cfg.Logger, cfg.Metrics = b.out, testLogger(t), worker.NewMetrics(prometheus.NewRegistry())
	w, err := worker.New(b.store, b.api, lim, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	release := make(chan struct{})
	b.api.fn = func(_ int, numbers []string) capapi.Result {
		if numbers[0] == number(1) {
			select {
			case <-release:
			case <-time.After(patience):
			}
		}
		return accepted
	}
	done := make(chan error, 1)
	go func() { done <- w.ProcessTask(b.ctx, tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0})) }()
	waitUntil(t, "[5,10)'s outcome recorded while [0,5)'s call is in flight", func() bool {
		outs, err := b.store.Outcomes(b.ctx, b.job, 0)
		return err == nil && len(outs) == 1
	})
	close(release)
	if err := receive(t, "the chunk's end", done); err != nil {
		t.Fatal(err)
	}
	b.wantAccepted(t, 0, 1)
}
