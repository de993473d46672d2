package e2e_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/jobstore"
)

// TestWorkers: three workers share a job on a simulator that refuses numbers
// ending in the reject suffix and fails 5% of requests (503) and drops 1%:
// every row ends where it belongs, the invalid numbers isolated by bisection.
func TestWorkers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	m := e.startMock("mock-api", "--reject-suffix", rejectSuffix, "--fail-rate", "0.05", "--reset-rate", "0.01", "--seed", "42")
	metrics := freeAddr(t)
	workers := []*proc{
		e.startWorker("worker-1", m, apiKey, "--metrics-addr", metrics),
		e.startWorker("worker-2", m, apiKey),
		e.startWorker("worker-3", m, apiKey),
	}
	l := e.genList("input.csv", 3000, 1, rejectSuffix, 1)
	const id = "e2e-workers"
	e.enqueue(id, l, 100)

	j := e.waitJob(id, 60*time.Second)
	if j.State != jobstore.Done || j.Abort != "" {
		t.Fatalf("job ended %s (%s)", j.State, j.Abort)
	}
	results := checkOutputs(t, filepath.Join(e.out, id), l, wantAPI)
	st := m.stats(t)
	t.Logf("%d results, mock stats %+v, job counters %+v", len(results), st, j.Counters)

	rejected := 0
	for _, rec := range results {
		if rec[3] == "rejected" {
			rejected++
		}
	}
	switch {
	case rejected == 0:
		t.Error("no number rejected: the test does not exercise bisection")
	case st.Repeated != 0:
		t.Errorf("the simulator accepted %d numbers more than once, want 0 without a crash", st.Repeated)
	case st.Requests != j.Requests:
		t.Errorf("the simulator saw %d requests, the job counted %d", st.Requests, j.Requests)
	case st.ByStatus[503] == 0 || j.Retries == 0:
		t.Errorf("no transient failures retried (503s %d, retries %d)", st.ByStatus[503], j.Retries)
	case st.MaxWindow > 401:
		t.Errorf("the simulator saw %d requests in one second, above the fleet's --rate 400 (+1)", st.MaxWindow)
	}
	if _, err := os.Stat(filepath.Join(e.out, id, "summary.json")); err != nil {
		t.Error(err)
	}

	if code, body := get(t, "http://"+metrics+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	_, body := get(t, "http://"+metrics+"/metrics")
	for _, want := range []string{
		"capcheck_api_requests_total{class=\"accepted\"}", "capcheck_api_requests_total{class=\"invalid\"}",
		"capcheck_api_request_duration_seconds_bucket", "capcheck_ratelimit_wait_seconds_count",
		"capcheck_numbers_total{status=\"rejected\"}", "capcheck_rate_limited_total", "capcheck_retries_total",
		"capcheck_chunk_duration_seconds_count", "capcheck_chunks_total{result=\"done\"}", "go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	if strings.Contains(body, "capcheck_chunks_total{result=\"done\"} 0") {
		t.Errorf("worker-1 counted no chunk done:\n%s", body)
	}

	for _, w := range workers {
		w.signal(t, syscall.SIGTERM)
	}
	for _, w := range workers {
		if code := w.exitCode(t, patience); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM, want 0", w.name, code)
		}
		if !strings.Contains(w.err.String(), "worker started") {
			t.Errorf("%s did not log its start", w.name)
		}
	}
	e.assertNoKey(apiKey)
}

// TestUnauthorized: workers with a wrong key stop the job after a handful of
// calls, not one per chunk; the job ends failed naming the cause, and the key
// is nowhere.
func TestUnauthorized(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	m := e.startMock("mock-api")
	for _, name := range []string{"worker-1", "worker-2", "worker-3"} {
		e.startWorker(name, m, badKey)
	}
	l := e.genList("input.csv", 3000, 2, "", 0)
	const id = "e2e-unauthorized"
	e.enqueue(id, l, 100)

	start := time.Now()
	j := e.waitJob(id, 30*time.Second)
	t.Logf("job %s after %s: %q, %d of %d chunks, %+v", j.State, time.Since(start).Round(time.Millisecond), j.Abort, j.ChunksDone, j.Chunks, j.Counters)
	if j.State != jobstore.FailedJob || !strings.Contains(j.Abort, "401") || !strings.Contains(j.Abort, "check the API key") {
		t.Errorf("job ended %s with reason %q, want failed naming the 401 and --api-key", j.State, j.Abort)
	}
	const most = 4*3 + 1 // concurrency × replicas + 1
	if st := m.stats(t); st.Requests > most || st.ByStatus[401] != st.Requests {
		t.Errorf("the simulator saw %d requests (%v), want at most %d, all 401", st.Requests, st.ByStatus, most)
	}
	results := checkOutputs(t, filepath.Join(e.out, id), l, func(row) string { return "failed" })
	for _, rec := range results {
		if !strings.Contains(rec[5], "job stopped: "+j.Abort) {
			t.Fatalf("row %s: message %q, want the job's stop reason", rec[0], rec[5])
		}
	}
	summary, err := os.ReadFile(filepath.Join(e.out, id, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(summary), "check the API key") {
		t.Errorf("summary.json does not say why the job stopped:\n%s", summary)
	}
	e.assertNoKey(badKey)
}

// TestSIGTERM: a worker told to stop mid-job exits 0 promptly (once its
// calls in flight are recorded, not at its shutdown timeout), and another
// finishes its chunks without any call repeated.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	m := e.startMock("mock-api", "--reject-suffix", rejectSuffix, "--latency", "30ms", "--seed", "3")
	// A shutdown timeout longer than the test waits for the exit.
	a := e.startWorker("worker-a", m, apiKey, "--shutdown-timeout", "1h")
	b := e.startWorker("worker-b", m, apiKey)
	l := e.genList("input.csv", 5000, 3, rejectSuffix, 1)
	const id = "e2e-sigterm"
	e.enqueue(id, l, 100)

	waitFor(t, "worker-a at work", 30*time.Second, func() bool {
		return m.stats(t).Requests >= 40
	})
	stopped := time.Now()
	a.signal(t, syscall.SIGTERM)
	if code := a.exitCode(t, patience); code != 0 {
		t.Errorf("worker-a exited with %d after SIGTERM, want 0", code)
	}
	t.Logf("worker-a exited %s after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	if !strings.Contains(a.err.String(), "chunk handed back") {
		t.Errorf("worker-a handed no chunk back: it had none in flight, the test proves nothing")
	}

	j := e.waitJob(id, 60*time.Second)
	if j.State != jobstore.Done {
		t.Fatalf("job ended %s (%s)", j.State, j.Abort)
	}
	checkOutputs(t, filepath.Join(e.out, id), l, wantAPI)
	if st := m.stats(t); st.Repeated != 0 {
		t.Errorf("the simulator accepted %d numbers more than once, want 0: a drain repeats nothing", st.Repeated)
	}
	b.signal(t, syscall.SIGTERM)
	if code := b.exitCode(t, patience); code != 0 {
		t.Errorf("worker-b exited with %d, want 0", code)
	}
}

// TestSIGKILL: a worker killed mid-chunk loses nothing. asynq re-delivers its
// tasks once their lease (30s) has expired and a recoverer has run (every
// minute), so this test takes about a minute and a half.
func TestSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq's lease expiry and recoverer: ~90s")
	}
	t.Parallel()
	e := newEnv(t, true)
	m := e.startMock("mock-api", "--reject-suffix", rejectSuffix, "--latency", "20ms", "--seed", "4")
	const concurrency, batchSize = 4, 50 // startWorker's
	a := e.startWorker("worker-a", m, apiKey)
	l := e.genList("input.csv", 3000, 4, rejectSuffix, 1)
	const id = "e2e-sigkill"
	e.enqueue(id, l, 100)

	waitFor(t, "worker-a at work", 30*time.Second, func() bool { return m.stats(t).Requests >= 30 })
	a.signal(t, syscall.SIGKILL)
	if code := a.exitCode(t, patience); code != -1 {
		t.Errorf("worker-a exited with %d, want killed", code)
	}
	killed := m.stats(t)
	// Started a little after the kill so that its recoverer's pass a minute
	// later finds the dead worker's leases expired for 30s.
	time.Sleep(2 * time.Second)
	e.startWorker("worker-b", m, apiKey)

	j := e.waitJob(id, 150*time.Second)
	if j.State != jobstore.Done {
		t.Fatalf("job ended %s (%s)", j.State, j.Abort)
	}
	checkOutputs(t, filepath.Join(e.out, id), l, wantAPI)
	st := m.stats(t)
	t.Logf("at the kill: %d requests; at the end: %+v", killed.Requests, st)
	// Repeated counts numbers: at most the calls in flight at the kill, one
	// per chunk, of at most --batch-size numbers each.
	if st.Repeated > concurrency*batchSize {
		t.Errorf("the simulator accepted %d numbers more than once, want at most the %d calls in flight at the kill (%d numbers)",
			st.Repeated, concurrency, concurrency*batchSize)
	}
}

// TestChunkHandedToAWorkerGone: a worker killed as asynq handed it a chunk
// task, before it held the chunk (the task leased in asynq's set, no hold
// naming the chunk), costs the job seconds, not asynq's recovery (60 -
// 120 s): a live worker sees the lease and takes the chunk over.
func TestChunkHandedToAWorkerGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	m := e.startMock("mock-api", "--reject-suffix", rejectSuffix, "--latency", "5ms", "--seed", "5")
	l := e.genList("input.csv", 1000, 5, rejectSuffix, 1)
	const id = "e2e-handed-over"
	e.enqueue(id, l, 100)
	// asynq's dequeue script, for a worker that dies right after it.
	handOver := redis.NewScript(`
local id = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
redis.call('HSET', ARGV[1] .. id, 'state', 'active')
redis.call('HDEL', ARGV[1] .. id, 'pending_since')
redis.call('ZADD', KEYS[3], ARGV[2], id)
return id`)
	q := "asynq:{capcheck}:"
	died := time.Now()
	task, err := handOver.Run(context.Background(), e.redis.Client(t), []string{q + "pending", q + "active", q + "lease"},
		q+"t:", died.Add(30*time.Second).Unix()).Text()
	if err != nil {
		t.Fatal(err)
	}
	w := e.startWorker("worker", m, apiKey)
	j := e.waitJob(id, 30*time.Second)
	if j.State != jobstore.Done {
		t.Fatalf("job ended %s (%s)", j.State, j.Abort)
	}
	t.Logf("task %s handed to a worker gone; job done %s later", task, time.Since(died).Round(time.Millisecond))
	checkOutputs(t, filepath.Join(e.out, id), l, wantAPI)
	if st := m.stats(t); st.Repeated != 0 {
		t.Errorf("the simulator accepted %d numbers more than once, want 0", st.Repeated)
	}
	if n := strings.Count(w.err.String(), "before it held the chunk taken over"); n != 1 {
		t.Errorf("%d takeovers logged, want 1", n)
	}
}
