package e2e_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capcheck/capcheck/jobstore"
)

// TestWorkers: three workers share a job on a simulator that refuses numbers
// ending in the reject suffix and fails 5% of requests (503) and drops 1%:
// every row ends where it belongs, the invalid numbers isolated by bisection.
func TestWorkers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startMock("--reject-suffix", rejectSuffix, "--fail-rate", "0.05", "--reset-rate", "0.01", "--seed", "42")
	metrics := freeAddr(t)
	workers := []*proc{
		e.startWorker("worker-1", apiKey, "--metrics-addr", metrics),
		e.startWorker("worker-2", apiKey),
		e.startWorker("worker-3", apiKey),
	}
	input, rows := e.genInput(3000, 1)
	const id = "e2e-workers"
	e.enqueue(id, input, 100)

	j := e.waitJob(id, 60*time.Second)
	if j.State != jobstore.Done || j.Abort != "" {
		t.Fatalf("job ended %s (%s)", j.State, j.Abort)
	}
	results := e.checkFiles(id, rows, wantChecked)
	st := e.stats()
	t.Logf("%d results, mock stats %+v, job counters %+v", len(results)-1, st, j.Counters)

	rejected := 0
	for _, rec := range results[1:] {
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
		if err := w.wait(t, 10*time.Second); err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want 0", w.name, err)
		}
		if !strings.Contains(w.errb.String(), "worker started") {
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
	e := newEnv(t)
	e.startMock()
	const wrongKey = "wrong-K3Y-0a1b2c3d4e"
	for _, name := range []string{"worker-1", "worker-2", "worker-3"} {
		e.startWorker(name, wrongKey)
	}
	input, rows := e.genInput(3000, 2)
	const id = "e2e-unauthorized"
	e.enqueue(id, input, 100)

	start := time.Now()
	j := e.waitJob(id, 30*time.Second)
	t.Logf("job %s after %s: %q, %d of %d chunks, %+v", j.State, time.Since(start).Round(time.Millisecond), j.Abort, j.ChunksDone, j.Chunks, j.Counters)
	if j.State != jobstore.FailedJob || !strings.Contains(j.Abort, "401") || !strings.Contains(j.Abort, "check --api-key") {
		t.Errorf("job ended %s with reason %q, want failed naming the 401 and --api-key", j.State, j.Abort)
	}
	const most = 4*3 + 1 // concurrency × replicas + 1
	if st := e.stats(); st.Requests > most || st.ByStatus[401] != st.Requests {
		t.Errorf("the simulator saw %d requests (%v), want at most %d, all 401", st.Requests, st.ByStatus, most)
	}
	results := e.checkFiles(id, rows, func(row) string { return "failed" })
	for _, rec := range results[1:] {
		if !strings.Contains(rec[5], "job stopped: "+j.Abort) {
			t.Fatalf("row %s: message %q, want the job's stop reason", rec[0], rec[5])
		}
	}
	summary, _ := os.ReadFile(filepath.Join(e.out, id, "summary.json"))
	if !strings.Contains(string(summary), "check --api-key") {
		t.Errorf("summary.json does not say why the job stopped:\n%s", summary)
	}
	e.assertNoKey(wrongKey)
}

// TestSIGTERM: a worker told to stop mid-job exits 0 promptly, and another
// finishes its chunks without any call repeated.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startMock("--reject-suffix", rejectSuffix, "--latency", "30ms", "--seed", "3")
	a := e.startWorker("worker-a", apiKey)
	b := e.startWorker("worker-b", apiKey)
	input, rows := e.genInput(5000, 3)
	const id = "e2e-sigterm"
	e.enqueue(id, input, 100)

	waitFor(t, "worker-a at work", 30*time.Second, func() bool {
		return e.stats().Requests >= 40
	})
	stopped := time.Now()
	a.signal(t, syscall.SIGTERM)
	if err := a.wait(t, 10*time.Second); err != nil {
		t.Errorf("worker-a exited with %v after SIGTERM, want 0", err)
	}
	took := time.Since(stopped)
	t.Logf("worker-a exited %s after SIGTERM", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("worker-a took %s to drain, want a prompt exit", took)
	}
	if !strings.Contains(a.errb.String(), "chunk handed back") {
		t.Errorf("worker-a handed no chunk back: it had none in flight, the test proves nothing")
	}

	j := e.waitJob(id, 60*time.Second)
	if j.State != jobstore.Done {
		t.Fatalf("job ended %s (%s)", j.State, j.Abort)
	}
	e.checkFiles(id, rows, wantChecked)
	if st := e.stats(); st.Repeated != 0 {
		t.Errorf("the simulator accepted %d numbers more than once, want 0: a drain repeats nothing", st.Repeated)
	}
	b.signal(t, syscall.SIGTERM)
	if err := b.wait(t, 10*time.Second); err != nil {
		t.Errorf("worker-b exited with %v, want 0", err)
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
	e := newEnv(t)
	e.startMock("--reject-suffix", rejectSuffix, "--latency", "20ms", "--seed", "4")
	const concurrency, batchSize = 4, 50 // startWorker's
	a := e.startWorker("worker-a", apiKey)
	input, rows := e.genInput(3000, 4)
	const id = "e2e-sigkill"
	e.enqueue(id, input, 100)

	waitFor(t, "worker-a at work", 30*time.Second, func() bool { return e.stats().Requests >= 30 })
	a.signal(t, syscall.SIGKILL)
	_ = a.wait(t, 5*time.Second)
	killed := e.stats()
	// Started a little after the kill so that its recoverer's pass a minute
	// later finds the dead worker's leases expired for 30s.
	time.Sleep(2 * time.Second)
	e.startWorker("worker-b", apiKey)

	j := e.waitJob(id, 150*time.Second)
	if j.State != jobstore.Done {
		t.Fatalf("job ended %s (%s)", j.State, j.Abort)
	}
	e.checkFiles(id, rows, wantChecked)
	st := e.stats()
	t.Logf("at the kill: %d requests; at the end: %+v", killed.Requests, st)
	// Repeated counts numbers: at most the calls in flight at the kill, one
	// per chunk, of at most --batch-size numbers each.
	if st.Repeated > concurrency*batchSize {
		t.Errorf("the simulator accepted %d numbers more than once, want at most the %d calls in flight at the kill (%d numbers)",
			st.Repeated, concurrency, concurrency*batchSize)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
