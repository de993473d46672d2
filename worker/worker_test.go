package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
	"github.com/capcheck/capcheck/worker"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// fakeAPI answers calls with fn, given the call's index (from 0) and numbers.
type fakeAPI struct {
	mu    sync.Mutex
	calls [][]string
	fn    func(i int, numbers []string) capapi.Result
}

func (f *fakeAPI) Check(ctx context.Context, numbers []string) capapi.Result {
	f.mu.Lock()
	i := len(f.calls)
	f.calls = append(f.calls, slices.Clone(numbers))
	fn := f.fn
	f.mu.Unlock()
	if fn == nil {
		return accepted
	}
	return fn(i, numbers)
}

func (f *fakeAPI) Calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

var (
	accepted  = capapi.Result{Class: capapi.Accepted, StatusCode: 202, Code: "MSG402", Message: "Request Successfully Processed"}
	invalid   = capapi.Result{Class: capapi.Invalid, StatusCode: 400, Code: "RBC529", Message: "Invalid input or validation error!"}
	transient = capapi.Result{Class: capapi.Transient, StatusCode: 503, Message: "Service Unavailable", Err: errors.New("HTTP 503 Service Unavailable")}
	unauth    = capapi.Result{Class: capapi.Unauthorized, StatusCode: 401, Code: "RBC401", Message: "Unauthorized"}
)

// fakeLimiter permits every call at once and records pauses.
type fakeLimiter struct {
	mu     sync.Mutex
	waits  int
	now    int // calls waiting for a permit
	most   int // the most at once
	pauses []time.Duration
	err    error         // returned by Wait when set
	gate   chan struct{} // when set, each Wait takes one permit from it
}

func (l *fakeLimiter) Wait(ctx context.Context) (time.Duration, error) {
	l.mu.Lock()
	l.waits++
	err, gate := l.err, l.gate
	l.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if gate != nil {
		l.mu.Lock()
		l.now++
		l.most = max(l.most, l.now)
		l.mu.Unlock()
		select {
		case <-gate:
		case <-ctx.Done():
		}
		l.mu.Lock()
		l.now--
		l.mu.Unlock()
	}
	return 0, ctx.Err()
}

// Waiting is how many calls wait at the gate now, and the most at once.
func (l *fakeLimiter) Waiting() (now, most int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.now, l.most
}

// Waits is how many calls have waited (or wait) for a permit.
func (l *fakeLimiter) Waits() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waits
}

func (l *fakeLimiter) Pause(_ context.Context, d time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pauses = append(l.pauses, d)
	return nil
}

type bundle struct {
	ctx   context.Context
	rdb   *redistest.Server
	store *jobstore.Store
	api   *fakeAPI
	lim   *fakeLimiter
	w     *worker.Worker
	reg   *prometheus.Registry
	job   string
	out   string
	sizes []int // entries per chunk
}

// setup creates a job of chunks of the given sizes, enqueued, and a worker
// on the fake API and limiter. private gives the test a Redis of its own,
// for tests that run an asynq server (asynq's keys cannot be prefixed).
func setup(t *testing.T, cfg worker.Config, private bool, sizes ...int) *bundle {
	t.Helper()
	t.Parallel()
	srv := redistest.Shared(t)
	if private {
		srv = redistest.StartPrivate(t)
	}
	b := &bundle{
		ctx: context.Background(), rdb: srv, store: jobstore.New(srv.Client(t)),
		api: &fakeAPI{}, lim: &fakeLimiter{}, reg: prometheus.NewRegistry(),
		job: redistest.NewPrefix(t), out: t.TempDir(), sizes: sizes,
	}
	if _, _, err := b.store.CreateJob(b.ctx, jobstore.Spec{ID: b.job, Input: "in.csv", Fingerprint: "fp", ChunkSize: 1000}); err != nil {
		t.Fatal(err)
	}
	row := int64(0)
	for i, n := range sizes {
		entries := make([]jobstore.Entry, n)
		for k := range entries {
			row++
			entries[k] = jobstore.Entry{Row: row, Number: fmt.Sprintf("+91980%07d", row), Input: fmt.Sprintf("980%07d", row)}
		}
		if err := b.store.PutChunk(b.ctx, b.job, i, entries); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.store.FinishEnqueue(b.ctx, b.job, jobstore.Counts{Rows: row, Valid: row}, len(sizes), 0); err != nil {
		t.Fatal(err)
	}
	cfg.OutDir = b.out
	cfg.BackoffBase = cmpOr(cfg.BackoffBase, time.Millisecond)
	cfg.BackoffMax = cmpOr(cfg.BackoffMax, 4*time.Millisecond)
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	cfg.Metrics = worker.NewMetrics(b.reg)
	w, err := worker.New(b.store, b.api, b.lim, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	b.w = w
	return b
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// testLogger logs to the test at debug level when -v is set.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// patience bounds the waits of the tests for what takes milliseconds: only
// a hang reaches it, even on a loaded machine. The tests wait for events,
// not for time to pass.
const patience = 2 * time.Minute

// waitUntil polls cond until it holds, failing the test when patience runs
// out first.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, patience)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receive waits for a receive from c, failing the test when patience runs
// out first.
func receive[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(patience):
		t.Fatalf("%s: not within %s", what, patience)
		panic("unreachable")
	}
}

// logSeen records the messages a worker logs at info level and above (and
// passes every record on to the test's logger), so that a test can wait for
// the log line of a step: the observable sign that the worker is past it.
type logSeen struct {
	next slog.Handler
	mu   *sync.Mutex
	msgs map[string]int
}

func newLogSeen(t *testing.T) *logSeen {
	return &logSeen{next: testLogger(t).Handler(), mu: new(sync.Mutex), msgs: map[string]int{}}
}

func (h *logSeen) Logger() *slog.Logger { return slog.New(h) }

// Seen is how many times msg was logged.
func (h *logSeen) Seen(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs[msg]
}

func (h *logSeen) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *logSeen) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs[r.Message]++
	h.mu.Unlock()
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *logSeen) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *logSeen) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// number is the number of the entry with 1-based row.
func number(row int) string { return fmt.Sprintf("+91980%07d", row) }

// run handles chunk i as asynq would.
func (b *bundle) run(i int) error {
	return b.w.ProcessTask(b.ctx, tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: i}))
}

func (b *bundle) mustRun(t *testing.T, i int) {
	t.Helper()
	if err := b.run(i); err != nil {
		t.Fatalf("chunk %d: %v", i, err)
	}
}

// settled returns the settling outcome of each entry of chunk i and fails
// the test unless all are settled.
func (b *bundle) settled(t *testing.T, i int) []jobstore.Outcome {
	t.Helper()
	outs, err := b.store.Outcomes(b.ctx, b.job, i)
	if err != nil {
		t.Fatal(err)
	}
	per, all := jobstore.Settle(b.sizes[i], outs)
	if !all {
		t.Fatalf("chunk %d not settled: %+v", i, outs)
	}
	return per
}

// wantAccepted fails the test unless every entry of chunk i was accepted
// at attempt attempts.
func (b *bundle) wantAccepted(t *testing.T, i, attempts int) {
	t.Helper()
	for k, o := range b.settled(t, i) {
		if o.Status != jobstore.Accepted || o.Attempts != attempts {
			t.Fatalf("entry %d: %+v, want accepted at attempt %d", k, o, attempts)
		}
	}
}

// answerFirst is an API that answers r to the first n calls, then accepts.
func answerFirst(n int, r capapi.Result) func(int, []string) capapi.Result {
	return func(i int, _ []string) capapi.Result {
		if i < n {
			return r
		}
		return accepted
	}
}

func (b *bundle) jobRecord(t *testing.T) *jobstore.Job {
	t.Helper()
	j, err := b.store.Job(b.ctx, b.job)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// finalize runs the job's finalize task and returns results.csv's lines.
func (b *bundle) finalize(t *testing.T) []string {
	t.Helper()
	j := b.jobRecord(t)
	if err := b.w.ProcessTask(b.ctx, tasks.NewFinalize(tasks.Finalize{Job: b.job, Gen: j.Gen})); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(b.out, b.job, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func TestAccepted(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 100, Retention: time.Hour}, false, 250)
	b.mustRun(t, 0)

	// The chunk's lanes send its batches at once: in any order.
	calls := b.api.Calls()
	slices.SortFunc(calls, func(x, y []string) int { return strings.Compare(x[0], y[0]) })
	var sizes []int
	for _, c := range calls {
		sizes = append(sizes, len(c))
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("call sizes = %v, want [100 100 50]", sizes)
	}
	if got := calls[2][0]; got != number(201) {
		t.Errorf("third batch starts with %s, want %s", got, number(201))
	}
	for k, o := range b.settled(t, 0) {
		if o.Status != jobstore.Accepted || o.Attempts != 1 || o.CheckedAt == 0 {
			t.Fatalf("entry %d: %+v, want accepted after 1 attempt", k, o)
		}
	}
	j := b.jobRecord(t)
	if j.Accepted != 250 || j.Requests != 3 || j.Failed != 0 || j.ChunksDone != 1 {
		t.Errorf("job counters = %+v", j.Counters)
	}
	if b.lim.waits != 3 {
		t.Errorf("limiter waits = %d, want one per call (3)", b.lim.waits)
	}
	if got := counter(t, b.reg, "capcheck_numbers_total", "accepted"); got != 250 {
		t.Errorf("capcheck_numbers_total{status=accepted} = %v, want 250", got)
	}

	lines := b.finalize(t)
	if len(lines) != 251 || lines[0] != "row,input,number,status,code,message,attempts,checked_at,capability,capability_at" {
		t.Fatalf("results.csv: %d lines, header %q", len(lines), lines[0])
	}
	if !strings.HasPrefix(lines[1], "1,9800000001,+919800000001,accepted,") {
		t.Errorf("first line %q", lines[1])
	}
	if st := b.jobRecord(t).State; st != jobstore.Done {
		t.Errorf("job state %s after finalize, want done", st)
	}
	// Every number was sent: 250 misses of the memory, counted at finalize.
	if miss, hit := counter(t, b.reg, "capcheck_memory_lookups_total", "miss"), counter(t, b.reg, "capcheck_memory_lookups_total", "hit"); miss != 250 || hit != 0 {
		t.Errorf("capcheck_memory_lookups_total: miss %v hit %v, want 250 and 0", miss, hit)
	}
	// Finished, the job's records expire after Config.Retention.
	if ttl := b.store.Redis().TTL(b.ctx, "capcheck:job:{"+b.job+"}").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("TTL of the job record = %v, want up to Retention (1h)", ttl)
	}
	// A second finalize (a re-delivered task) is a no-op.
	if err := b.w.ProcessTask(b.ctx, tasks.NewFinalize(tasks.Finalize{Job: b.job})); err != nil {
		t.Errorf("second finalize: %v", err)
	}
}

// counter returns the value of counter name's series with a label of value v.
func counter(t *testing.T, reg *prometheus.Registry, name, v string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() == v {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{...=%q}", name, v)
	return 0
}

func TestBisection(t *testing.T) {
	t.Parallel()
	const n = 100
	for seed := range uint64(16) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			b := setup(t, worker.Config{BatchSize: n}, false, n)
			rng := rand.New(rand.NewPCG(seed, 1))
			bad := map[string]bool{}
			for len(bad) < 2 {
				bad[number(1+rng.IntN(n))] = true
			}
			b.api.fn = func(_ int, numbers []string) capapi.Result {
				for _, x := range numbers {
					if bad[x] {
						r := invalid
						r.Message += ": invalid number: " + x
						return r
					}
				}
				return accepted
			}
			b.mustRun(t, 0)

			for k, o := range b.settled(t, 0) {
				x := number(k + 1)
				switch {
				case bad[x] && (o.Status != jobstore.Rejected || o.Code != "RBC529" || !strings.Contains(o.Message, x) || o.Hi-o.Lo != 1):
					t.Errorf("invalid %s: %+v, want rejected alone with the API's code and message", x, o)
				case !bad[x] && o.Status != jobstore.Accepted:
					t.Errorf("valid %s: %+v, want accepted", x, o)
				case o.Attempts < 2:
					t.Errorf("%s: attempts %d, want at least 2 (the whole batch, then its part)", x, o.Attempts)
				}
			}
			// Each invalid number costs at most two calls per level: 2·k·log2(n)+1.
			calls := len(b.api.Calls())
			limit := int(2*float64(len(bad))*math.Log2(n)) + 1
			t.Logf("%d calls to isolate %v (limit %d)", calls, bad, limit)
			if calls > limit {
				t.Errorf("%d calls to isolate %d invalid numbers in %d, want at most %d", calls, len(bad), n, limit)
			}
			j := b.jobRecord(t)
			if j.Rejected != 2 || j.Accepted != n-2 || j.Requests != int64(calls) {
				t.Errorf("job counters = %+v, calls %d", j.Counters, calls)
			}
			b.checkRemembered(t, bad)
		})
	}
}

func TestTransientThenSuccess(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, MaxAttempts: 5}, false, 10)
	b.api.fn = answerFirst(2, transient)
	b.mustRun(t, 0)
	b.wantAccepted(t, 0, 3)
	j := b.jobRecord(t)
	if j.Requests != 3 || j.Retries != 2 || j.Accepted != 10 {
		t.Errorf("job counters = %+v, want 3 requests, 2 retries", j.Counters)
	}
}

// A request its permit's re-check kept from being written was never a call:
// no attempt, no request, no retry; the range waits for another permit.
func TestNotSentIsNoCall(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, MaxAttempts: 2}, false, 10)
	notSent := capapi.Result{Class: capapi.Transient, Err: fmt.Errorf("POST x: %w: slot lost", capapi.ErrNotSent)}
	b.api.fn = answerFirst(3, notSent)
	b.mustRun(t, 0)
	b.wantAccepted(t, 0, 1)
	if j := b.jobRecord(t); j.Requests != 1 || j.Retries != 0 {
		t.Errorf("job counters = %+v, want 1 request, no retry", j.Counters)
	}
	if waits := b.lim.waits; waits != 4 {
		t.Errorf("%d limiter waits, want 4 (a new permit after each request not sent)", waits)
	}
}

func TestTransientUntilMaxAttempts(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, MaxAttempts: 3}, false, 20)
	b.api.fn = func(_ int, numbers []string) capapi.Result {
		if numbers[0] == number(1) {
			return transient
		}
		return accepted
	}
	b.mustRun(t, 0)
	per := b.settled(t, 0)
	for k, o := range per[:10] {
		if o.Status != jobstore.Failed || o.Attempts != 3 || o.Message != "gave up after 3 attempts: HTTP 503 Service Unavailable" {
			t.Fatalf("entry %d: %+v, want failed after 3 attempts with the cause", k, o)
		}
	}
	for k, o := range per[10:] {
		if o.Status != jobstore.Accepted {
			t.Fatalf("entry %d: %+v, want accepted", 10+k, o)
		}
	}
	if calls := len(b.api.Calls()); calls != 4 {
		t.Errorf("%d calls, want 3 for the failing range and 1 for the other", calls)
	}
	j := b.jobRecord(t)
	if j.Failed != 10 || j.Accepted != 10 || j.Requests != 4 || j.Retries != 2 {
		t.Errorf("job counters = %+v", j.Counters)
	}
}

func TestRateLimitedPausesAndIsNotAnAttempt(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, PauseDefault: 7 * time.Second}, false, 10)
	b.api.fn = func(i int, _ []string) capapi.Result {
		switch i {
		case 0:
			return capapi.Result{Class: capapi.RateLimited, StatusCode: 429, RetryAfter: 2 * time.Second}
		case 1:
			return capapi.Result{Class: capapi.RateLimited, StatusCode: 429}
		case 2:
			return transient
		}
		return accepted
	}
	b.mustRun(t, 0)
	if !slices.Equal(b.lim.pauses, []time.Duration{2 * time.Second, 7 * time.Second}) {
		t.Errorf("pauses = %v, want [2s 7s] (Retry-After, then the default)", b.lim.pauses)
	}
	b.wantAccepted(t, 0, 2) // 429s do not count
	j := b.jobRecord(t)
	if j.RateLimited != 2 || j.Requests != 4 || j.Retries != 1 {
		t.Errorf("job counters = %+v, want 2 rate limited of 4 requests", j.Counters)
	}
	if b.lim.waits != 4 {
		t.Errorf("limiter waits = %d, want 4 (every call waits, repeats included)", b.lim.waits)
	}
	if got := counter(t, b.reg, "capcheck_api_requests_total", "rate_limited"); got != 2 {
		t.Errorf("capcheck_api_requests_total{class=rate_limited} = %v, want 2", got)
	}
}

// TestUnauthorizedStopsCallsWaitingForTheLimiter: chunks whose calls are
// already waiting for a permit when the 401 comes send nothing.
func TestUnauthorizedStopsCallsWaitingForTheLimiter(t *testing.T) {
	logs := newLogSeen(t)
	b := setup(t, worker.Config{BatchSize: 10, Logger: logs.Logger()}, false, 10, 10, 10, 10, 10, 10, 10, 10)
	b.api.fn = func(int, []string) capapi.Result { return unauth }
	b.lim.gate = make(chan struct{})
	var wg sync.WaitGroup
	for i := range b.sizes {
		wg.Add(1)
		go func() { defer wg.Done(); _ = b.run(i) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitUntil(t, "every chunk waiting for a permit", func() bool { return b.lim.Waits() == len(b.sizes) })
	select {
	case b.lim.gate <- struct{}{}: // the one call, answered 401
	case <-time.After(patience):
		t.Fatal("no chunk took the first permit")
	}
	// The other chunks get their permits once the worker has taken the 401
	// in (it logs the abort then), as a fleet limiter hands them out later.
	waitUntil(t, "the 401 taken in", func() bool { return logs.Seen("job aborted: no more API calls for it") > 0 })
	deadline := time.After(patience)
	for {
		select {
		case <-done:
			if calls := len(b.api.Calls()); calls != 1 {
				t.Errorf("%d calls, want 1: calls waiting for a permit when the 401 came must not be sent", calls)
			}
			if j := b.jobRecord(t); j.Failed != 80 || j.ChunksDone != 8 {
				t.Errorf("job = %+v, want 80 failed, 8 chunks done", j)
			}
			return
		case b.lim.gate <- struct{}{}:
		case <-deadline:
			t.Fatalf("chunks still running %s after the 401", patience)
		}
	}
}

// TestAbortByAnotherReplicaStopsWaitingCalls: a job aborted elsewhere (by
// another replica's 401) sends no more calls, though the worker read its
// abort reason a moment before: the announcement makes it read again.
func TestAbortByAnotherReplicaStopsWaitingCalls(t *testing.T) {
	// A Redis of its own: on the shared one another test's worker may be the
	// subscriber counted below, and the abort announced before this one listens.
	b := setup(t, worker.Config{BatchSize: 10}, true, 30)
	b.api.fn = func(int, []string) capapi.Result { return accepted }
	b.lim.gate = make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- b.run(0) }()
	b.lim.gate <- struct{}{} // the first call
	waitUntil(t, "the first call", func() bool { return len(b.api.Calls()) >= 1 })
	// The worker listens for announcements from its first call on.
	waitUntil(t, "the worker listening for aborts", func() bool {
		subs, err := b.store.Redis().PubSubNumSub(b.ctx, "capcheck:aborts").Result()
		if err != nil {
			t.Fatal(err)
		}
		return subs["capcheck:aborts"] > 0
	})
	const reason = "stopped by another replica"
	if err := b.store.Abort(b.ctx, b.job, reason); err != nil {
		t.Fatal(err)
	}
	// The announcement's way, not the second between reads.
	waitUntil(t, "the abort announced to the worker", func() bool { return b.w.AbortAnnounced(b.job) })
	deadline := time.After(patience)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if calls := len(b.api.Calls()); calls != 1 {
				t.Errorf("%d calls, want 1: a job aborted elsewhere must send no call after the announcement", calls)
			}
			if j := b.jobRecord(t); j.Failed != 20 || j.Accepted != 10 {
				t.Errorf("job = %+v, want 10 accepted, 20 failed", j.Counters)
			}
			return
		case b.lim.gate <- struct{}{}:
		case <-deadline:
			t.Fatal("chunk still running")
		}
	}
}

func TestUnauthorizedStopsTheJob(t *testing.T) {
	// One lane: the first call is the only one in flight (see
	// TestLanesAbortAfterTheCallsInFlight for several).
	b := setup(t, worker.Config{BatchSize: 10, CallsInFlight: 1}, false, 30, 30, 30)
	b.api.fn = func(int, []string) capapi.Result { return unauth }
	for i := range b.sizes {
		b.mustRun(t, i)
	}
	if calls := len(b.api.Calls()); calls != 1 {
		t.Errorf("%d calls, want 1: the job stops at the first 401", calls)
	}
	j := b.jobRecord(t)
	const reason = "the API refused the key (401 RBC401 Unauthorized): check the API key"
	if j.Abort != reason {
		t.Errorf("abort reason %q, want %q", j.Abort, reason)
	}
	if j.Failed != 90 || j.Requests != 1 || j.ChunksDone != 3 {
		t.Errorf("job = %+v, want 90 failed, 1 request, 3 chunks done", j)
	}
	first := b.settled(t, 0)
	if o := first[0]; o.Status != jobstore.Failed || o.Message != "job stopped: "+reason || o.Attempts != 1 {
		t.Errorf("refused range: %+v", o)
	}
	if o := first[10]; o.Status != jobstore.Failed || o.Message != "not sent: job stopped: "+reason || o.Attempts != 0 {
		t.Errorf("range after the 401: %+v", o)
	}
	if o := b.settled(t, 2)[29]; o.Message != "not sent: job stopped: "+reason {
		t.Errorf("last range: %+v", o)
	}
	lines := b.finalize(t)
	if len(lines) != 91 {
		t.Errorf("results.csv has %d lines, want 91", len(lines))
	}
	if st := b.jobRecord(t).State; st != jobstore.FailedJob {
		t.Errorf("state %s, want failed", st)
	}
	data, _ := os.ReadFile(filepath.Join(b.out, b.job, "summary.json"))
	if !strings.Contains(string(data), "check the API key") {
		t.Errorf("summary.json does not name the cause: %s", data)
	}
}

func TestFatalAnswerStopsTheJob(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, CallsInFlight: 1}, false, 20) // one call in flight
	b.api.fn = func(int, []string) capapi.Result {
		return capapi.Result{Class: capapi.Fatal, StatusCode: 404, Message: "Not Found", Err: errors.New("HTTP 404 Not Found from POST http://x/v1/sid/...: check the API base URL and SID")}
	}
	b.mustRun(t, 0)
	const reason = "the API answered 404 for the capability-check URL: check the API URL and the SID"
	if j := b.jobRecord(t); j.Abort != reason || j.Failed != 20 || j.Requests != 1 {
		t.Errorf("job = abort %q, %+v", j.Abort, j.Counters)
	}
}

func TestResumeDoesNotResendRecordedRanges(t *testing.T) {
	// One lane, for the calls' order (TestLanesCrashWithCallsInFlight has two).
	b := setup(t, worker.Config{BatchSize: 10, CallsInFlight: 1}, false, 50)
	ctx, crash := context.WithCancel(b.ctx)
	bad := number(28) // entry 27
	answer := func(numbers []string) capapi.Result {
		if slices.Contains(numbers, bad) {
			return invalid
		}
		return accepted
	}
	// Calls: [0,10) [10,20) [20,30) refused and split, [20,25) accepted, so
	// [25,30) is split without a call; [25,27) is in flight at the crash.
	b.api.fn = func(i int, numbers []string) capapi.Result {
		if i == 4 {
			crash() // the process dies with this call in flight
			return capapi.Result{Class: capapi.Transient, Err: context.Canceled}
		}
		return answer(numbers)
	}
	if err := b.w.ProcessTask(ctx, tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0})); err == nil {
		t.Fatal("crashed run returned no error")
	}
	first := b.api.Calls()
	recorded, _ := b.store.Outcomes(b.ctx, b.job, 0)
	if len(first) != 5 || len(recorded) != 5 {
		t.Fatalf("before the crash: %d calls, recorded %+v", len(first), recorded)
	}
	settledBefore, _ := jobstore.Settle(50, recorded)

	b.api.mu.Lock()
	b.api.calls = nil
	b.api.fn = func(_ int, numbers []string) capapi.Result { return answer(numbers) }
	b.api.mu.Unlock()
	b.mustRun(t, 0) // re-delivered
	second := b.api.Calls()

	for _, c := range second {
		for _, x := range c {
			var k int
			fmt.Sscanf(x, "+91980%07d", &k)
			if settledBefore[k-1].Final() {
				t.Errorf("re-delivered chunk re-sent %s, settled before the crash", x)
			}
		}
	}
	if !slices.Equal(second[0], first[4]) {
		t.Errorf("first call after resume = %v, want the in-flight one %v", second[0], first[4])
	}
	per := b.settled(t, 0)
	if o := per[27]; o.Status != jobstore.Rejected || o.Attempts != 3 {
		t.Errorf("invalid number: %+v, want rejected at attempt 3", o)
	}
	if j := b.jobRecord(t); j.Accepted != 49 || j.Rejected != 1 {
		t.Errorf("job counters = %+v", j.Counters)
	}
}

func TestStaleTasksAreSkipped(t *testing.T) {
	b := setup(t, worker.Config{}, false, 5)
	if err := b.w.ProcessTask(b.ctx, tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0, Gen: 3})); err != nil {
		t.Fatal(err)
	}
	if err := b.w.ProcessTask(b.ctx, tasks.NewChunk(tasks.Chunk{Job: b.job + "-gone", Chunk: 0})); err != nil {
		t.Fatal(err)
	}
	if err := b.w.ProcessTask(b.ctx, tasks.NewFinalize(tasks.Finalize{Job: b.job, Gen: 0})); err != nil {
		t.Fatal(err) // not every chunk settled: nothing to do
	}
	if n := len(b.api.Calls()); n != 0 {
		t.Errorf("%d calls for stale tasks", n)
	}
	if err := b.w.ProcessTask(b.ctx, asynq.NewTask(tasks.TypeChunk, []byte("{"))); !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("bad payload: err = %v, want SkipRetry", err)
	}
}

// TestDraining runs a real asynq server: Shutdown while a call is in flight
// records that call, hands the chunk back without using a retry, and another
// worker finishes it without repeating anything.
func TestDraining(t *testing.T) {
	// Shutdown must return once the call in flight ends, not at its timeout:
	// a timeout longer than the test's patience tells them apart. One lane:
	// one call in flight.
	b := setup(t, worker.Config{BatchSize: 10, ShutdownTimeout: 2 * patience, CallsInFlight: 1}, true, 50)
	inFlight, release := make(chan struct{}), make(chan struct{})
	b.api.fn = func(i int, _ []string) capapi.Result {
		if i == 1 {
			close(inFlight)
			<-release
		}
		return accepted
	}
	client := asynq.NewClientFromRedisClient(b.store.Redis())
	task := tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0})
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	if err := b.w.Start(); err != nil {
		t.Fatal(err)
	}
	receive(t, "the second call in flight", inFlight)
	done := make(chan struct{})
	go func() { b.w.Shutdown(); close(done) }()
	receive(t, "Shutdown under way", b.w.Draining()) // with the call in flight
	close(release)
	receive(t, "Shutdown's return once the call in flight ended", done)
	outs, _ := b.store.Outcomes(b.ctx, b.job, 0)
	if len(outs) != 2 || len(b.api.Calls()) != 2 {
		t.Fatalf("after drain: %d calls, outcomes %+v; want the in-flight call recorded and no more", len(b.api.Calls()), outs)
	}
	info, err := asynq.NewInspectorFromRedisClient(b.store.Redis()).GetTaskInfo(tasks.Queue, tasks.Chunk{Job: b.job, Chunk: 0}.ID())
	if err != nil {
		t.Fatal(err)
	}
	if info.Retried != 0 || (info.State != asynq.TaskStateRetry && info.State != asynq.TaskStatePending) {
		t.Errorf("drained task: state %v, retried %d; want re-queued without a retry used", info.State, info.Retried)
	}

	api2 := &fakeAPI{}
	w2, err := worker.New(b.store, api2, &fakeLimiter{}, worker.Config{BatchSize: 10, OutDir: b.out, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	defer w2.Shutdown()
	waitState(t, b, jobstore.Done)
	if n := len(api2.Calls()); n != 3 {
		t.Errorf("second worker sent %d calls, want the 3 ranges left", n)
	}
	if _, err := os.Stat(filepath.Join(b.out, b.job, "results.csv")); err != nil {
		t.Error(err)
	}
}

// waitState waits for b's job to reach state want.
func waitState(t *testing.T, b *bundle, want jobstore.State) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		j := b.jobRecord(t)
		if j.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job state %s after %s, want %s (%+v)", j.State, patience, want, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdleWorkerWaitsForAnnouncedTasks: an idle worker looks at the empty
// queue about once a second rather than twenty times, and a task announced
// (tasks.Announce) is taken at once.
func TestIdleWorkerWaitsForAnnouncedTasks(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10}, true, 10)
	b.api.fn = func(int, []string) capapi.Result { return accepted }
	rdb := b.store.Redis()
	if err := b.w.Start(); err != nil {
		t.Fatal(err)
	}
	dequeues := func() int {
		stats, err := rdb.Info(b.ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(stats, "cmdstat_rpoplpush:calls=") // run by asynq's dequeue script only
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		return n
	}
	waitUntil(t, "the worker started and idle", func() bool {
		subs, err := rdb.PubSubNumSub(b.ctx, tasks.WakeChannel).Result()
		if err != nil {
			t.Fatal(err)
		}
		return subs[tasks.WakeChannel] > 0 && dequeues() > 0
	})
	// Wait for some looks, and see how long they took. The clock runs from
	// after the first count to before the last one: no longer than the time
	// between the two counts in Redis, so a loaded machine only makes the
	// looks seem rarer.
	const looks = 5
	before := dequeues()
	from := time.Now()
	deadline := from.Add(patience)
	var n int
	var took time.Duration
	for n < looks {
		if time.Now().After(deadline) {
			t.Fatalf("%d looks at the empty queue in %s, want one about every second", n, patience)
		}
		time.Sleep(50 * time.Millisecond)
		took = time.Since(from)
		n = dequeues() - before
	}
	t.Logf("%d looks at the empty queue in %s", n, took.Round(time.Millisecond))
	if float64(n) > 3*took.Seconds() {
		t.Errorf("%d looks at the empty queue in %s, want at most 3 a second (asynq alone polls every 50ms)", n, took.Round(time.Millisecond))
	}
	client := asynq.NewClientFromRedisClient(rdb)
	if _, err := client.Enqueue(tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0})); err != nil {
		t.Fatal(err)
	}
	tasks.Announce(b.ctx, rdb)
	waitState(t, b, jobstore.Done)
}

// TestChunkOfADeadWorkerIsTakenOver: a chunk whose worker stopped renewing
// its hold (killed) is run by another worker, as a task of its own (a
// takeover), while asynq still holds the dead worker's task: here asynq holds
// no task of the chunk at all, so only a takeover can run it.
func TestChunkOfADeadWorkerIsTakenOver(t *testing.T) {
	logs := newLogSeen(t)
	b := setup(t, worker.Config{BatchSize: 10, Logger: logs.Logger()}, true, 20)
	b.api.fn = func(int, []string) capapi.Result { return accepted }
	payload, _ := json.Marshal(tasks.Chunk{Job: b.job, Chunk: 0})
	dead := jobstore.Run{Chunk: b.job + "/0/0", Member: "deadworker " + string(payload)}
	if ok, err := b.store.TakeRun(b.ctx, 0, dead); err != nil || !ok {
		t.Fatalf("holding the dead worker's run: %v, %v", ok, err)
	}
	if err := b.w.Start(); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, jobstore.Done)
	if n := logs.Seen("chunk of a worker gone taken over"); n != 1 {
		t.Errorf("%d takeovers logged, want 1", n)
	}
	if n := len(b.api.Calls()); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
	if runs, err := b.store.ClaimLapsedRuns(b.ctx, 10); err != nil || len(runs) != 0 {
		t.Errorf("holds left after the job: %q, %v", runs, err)
	}
}

// TestRunStopsWhenItsHoldIsTakenOver: a worker starved past its hold's
// lapse, whose chunk another worker claimed meanwhile, records the answer
// of its call in flight and hands the task back without sending again; the
// takeover sends the rest, each number once.
func TestRunStopsWhenItsHoldIsTakenOver(t *testing.T) {
	// One lane: another lane's calls would renew the hold (holdReady).
	b := setup(t, worker.Config{BatchSize: 10, CallsInFlight: 1}, true, 40)
	if err := b.w.Start(); err != nil {
		t.Fatal(err)
	}
	b.api.fn = func(i int, _ []string) capapi.Result {
		if i == 0 {
			// Starved in flight for longer than a hold lasts, while
			// another worker claims the lapsed hold.
			b.w.StarveHolds(time.Minute)
			claimRun(t, b, b.job+"/0/0")
		}
		return accepted
	}
	if err := b.run(0); !errors.Is(err, worker.ErrHandedBack) {
		t.Fatalf("the starved run returned %v, want it handed back", err)
	}
	if n := len(b.api.Calls()); n != 1 {
		t.Fatalf("%d calls by the starved run, want 1 (none after its hold was taken)", n)
	}
	takeover := tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0, Retake: 1})
	if err := b.w.ProcessTask(b.ctx, takeover); err != nil {
		t.Fatal(err)
	}
	b.mustRun(t, 0) // the handed-back task, re-queued: nothing left
	sent := map[string]int{}
	for _, c := range b.api.Calls() {
		for _, n := range c {
			sent[n]++
		}
	}
	for row := 1; row <= 40; row++ {
		if sent[number(row)] != 1 {
			t.Errorf("%s sent %d times, want once", number(row), sent[number(row)])
		}
	}
	b.settled(t, 0)
}

// claimRun makes the hold of chunk lapse and claims it, as another worker
// does when the holder stops renewing.
func claimRun(t *testing.T, b *bundle, chunk string) {
	t.Helper()
	rdb := b.store.Redis()
	m, err := rdb.HGet(b.ctx, "capcheck:{running}:chunks", chunk).Result()
	if err != nil {
		t.Fatalf("the chunk's hold: %v", err)
	}
	if err := rdb.ZAddXX(b.ctx, "capcheck:{running}", redis.Z{Score: 0, Member: m}).Err(); err != nil {
		t.Fatal(err)
	}
	runs, err := b.store.ClaimLapsedRuns(b.ctx, 10)
	if err != nil || len(runs) != 1 || runs[0].Chunk != chunk {
		t.Fatalf("claimed %v, %v; want the chunk's run", runs, err)
	}
}

// TestChunkHeldByAnotherRunIsSkipped: a task of a chunk that another live
// run holds (asynq re-delivered it, or a takeover came late) sends nothing
// and is handed back (that run may end unsettled); once the hold is
// released the chunk runs.
func TestChunkHeldByAnotherRunIsSkipped(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10}, true, 20)
	if err := b.w.Start(); err != nil {
		t.Fatal(err)
	}
	other := jobstore.Run{Chunk: b.job + "/0/0", Member: "otherworker run"}
	if ok, err := b.store.TakeRun(b.ctx, time.Minute, other); err != nil || !ok {
		t.Fatalf("holding the other run: %v, %v", ok, err)
	}
	if err := b.run(0); !errors.Is(err, worker.ErrHandedBack) {
		t.Fatalf("chunk 0 held by another run: %v, want it handed back", err)
	}
	if n := len(b.api.Calls()); n != 0 {
		t.Fatalf("%d calls while another run held the chunk, want 0", n)
	}
	if got := counter(t, b.reg, "capcheck_chunks_total", "stale"); got != 1 {
		t.Errorf("chunks skipped: %v, want 1", got)
	}
	if err := b.store.ReleaseRun(b.ctx, other); err != nil {
		t.Fatal(err)
	}
	b.mustRun(t, 0)
	if n := len(b.api.Calls()); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

// TestGiveUp: a chunk task asynq stops retrying still settles its numbers,
// and the job finishes.
func TestGiveUp(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10}, true, 20)
	b.lim.err = errors.New("redis: connection refused")
	payload := fmt.Appendf(nil, `{"job":%q,"chunk":0,"gen":0}`, b.job)
	client := asynq.NewClientFromRedisClient(b.store.Redis())
	if _, err := client.Enqueue(asynq.NewTask(tasks.TypeChunk, payload, asynq.Queue(tasks.Queue), asynq.MaxRetry(0))); err != nil {
		t.Fatal(err)
	}
	if err := b.w.Start(); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, jobstore.Done)
	o := b.settled(t, 0)[0]
	if o.Status != jobstore.Failed || !strings.HasPrefix(o.Message, "gave up: waiting for the rate limit: redis: connection refused") {
		t.Errorf("outcome %+v", o)
	}
	if j := b.jobRecord(t); j.Failed != 20 {
		t.Errorf("job counters %+v", j.Counters)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	c := worker.Config{}.WithDefaults()
	if c.Concurrency != 16 || c.CallsInFlight != 64 || c.BatchSize != 100 || c.MaxAttempts != 5 || c.ShutdownTimeout != 30*time.Second ||
		c.OutDir != "./out" || c.BackoffBase != 500*time.Millisecond || c.BackoffMax != 30*time.Second || c.PauseDefault != 5*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	for _, bad := range []worker.Config{
		{Concurrency: -1}, {CallsInFlight: -1}, {BatchSize: -1}, {MaxAttempts: -2}, {BackoffBase: time.Second, BackoffMax: time.Millisecond},
		{Retention: -time.Hour},
	} {
		if err := bad.WithDefaults().Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
	err := worker.Config{Concurrency: -1, BatchSize: -1}.WithDefaults().Validate()
	if err == nil || !strings.Contains(err.Error(), "concurrency") || !strings.Contains(err.Error(), "batch size") {
		t.Errorf("Validate of two bad fields = %v; want both reported", err)
	}
	if _, err := worker.New(nil, &fakeAPI{}, &fakeLimiter{}, worker.Config{}); err == nil {
		t.Error("New with a nil store succeeded")
	}
}

// TestSweepSettlesArchivedChunks: asynq's recoverer archives a chunk whose
// lease expired on its last retry without calling the error handler; the
// sweep records its numbers failed so that the job still finishes.
func TestSweepSettlesArchivedChunks(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10}, true, 20)
	client := asynq.NewClientFromRedisClient(b.store.Redis())
	info, err := client.Enqueue(tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0}))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(b.store.Redis())
	if err := insp.ArchiveTask(tasks.Queue, info.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.w.SweepOnce(b.ctx); err != nil {
		t.Fatal(err)
	}
	o := b.settled(t, 0)[0]
	if o.Status != jobstore.Failed || !strings.HasPrefix(o.Message, "gave up: task archived by asynq") {
		t.Errorf("outcome %+v", o)
	}
	if j := b.jobRecord(t); j.Failed != 20 || j.ChunksDone != 1 {
		t.Errorf("job %+v", j)
	}
	if archived, _ := insp.ListArchivedTasks(tasks.Queue); len(archived) != 0 {
		t.Errorf("archived tasks left: %d", len(archived))
	}
	// A second sweep (another replica's) changes nothing.
	if err := b.w.SweepOnce(b.ctx); err != nil {
		t.Fatal(err)
	}
	if j := b.jobRecord(t); j.Failed != 20 {
		t.Errorf("after a second sweep failed = %d, want 20", j.Failed)
	}
	if api := b.api.Calls(); len(api) != 0 {
		t.Errorf("the sweep called the API %d times", len(api))
	}
}

// TestYieldNearTheTaskDeadline: a chunk whose task deadline is near hands
// itself back (ErrYielding, not a failure) before its next limiter wait.
func TestYieldNearTheTaskDeadline(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10}, false, 20)
	ctx, cancel := context.WithDeadline(b.ctx, time.Now().Add(time.Minute)) // within the yield margin
	defer cancel()
	err := b.w.ProcessTask(ctx, tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0}))
	if !errors.Is(err, worker.ErrYielding) || !errors.Is(err, worker.ErrHandedBack) {
		t.Fatalf("err = %v, want ErrYielding (a hand-back)", err)
	}
	if n := len(b.api.Calls()); n != 0 {
		t.Errorf("%d calls sent by a yielding chunk", n)
	}
}

func TestUnknownTaskTypesAreDropped(t *testing.T) {
	b := setup(t, worker.Config{}, false, 1)
	for _, typ := range []string{"capcheck:other", tasks.TypeChunk + ":v2"} {
		if err := b.w.ProcessTask(b.ctx, asynq.NewTask(typ, nil)); !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("task type %q: err = %v, want SkipRetry", typ, err)
		}
	}
}

// checkRemembered checks that the capability memory holds the rejection of
// each number of bad, with the API's code.
func (b *bundle) checkRemembered(t *testing.T, bad map[string]bool) {
	t.Helper()
	mem := capstore.New(b.rdb.Client(t), capstore.Options{})
	var nums []uint64
	for x := range bad {
		n, err := strconv.ParseUint(x[1:], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		nums = append(nums, n)
	}
	recs, err := mem.Lookup(b.ctx, nums)
	if err != nil {
		t.Fatal(err)
	}
	reasons, err := mem.Reasons(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Capability != capstore.Rejected || r.At.IsZero() || reasons[r.Reason].Code != "RBC529" {
			t.Errorf("memory of %d: %+v (reason %+v), want rejected with code RBC529", nums[i], r, reasons[r.Reason])
		}
	}
}

// A job listed as awaiting callbacks but deleted meanwhile (retention) is
// unlisted by the watch, which goes on.
func TestAwaitWatchUnlistsDeletedJob(t *testing.T) {
	b := setup(t, worker.Config{}, true, 1)
	rdb := b.rdb.Client(t)
	if err := rdb.ZAdd(b.ctx, "capcheck:awaiting", redis.Z{Score: 1, Member: "deleted-job"}).Err(); err != nil {
		t.Fatal(err)
	}
	listed, err := b.w.CheckAwaiting(b.ctx)
	if err != nil || !listed {
		t.Fatalf("CheckAwaiting = %v, %v; want listed, no error", listed, err)
	}
	if n, err := rdb.ZCard(b.ctx, "capcheck:awaiting").Result(); err != nil || n != 0 {
		t.Errorf("jobs still listed as awaiting: %d, %v; want 0", n, err)
	}
}

// A job still awaiting its callbacks does not hold back the finalize of a
// job listed after it (a later wait's end) that has every answer.
func TestAwaitWatchGoesPastAJobStillWaiting(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10}, true, 3)
	b.mustRun(t, 0) // accepted: its 3 answers are awaited
	other := b.job + "-b"
	if _, _, err := b.store.CreateJob(b.ctx, jobstore.Spec{ID: other, Input: "in.csv", Fingerprint: "fp2", ChunkSize: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := b.store.PutChunk(b.ctx, other, 0, []jobstore.Entry{{Row: 1, Number: "+919800000099", Input: "9800000099"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.FinishEnqueue(b.ctx, other, jobstore.Counts{Rows: 1, Valid: 1}, 1, 0); err != nil {
		t.Fatal(err)
	}
	b.api.fn = func(int, []string) capapi.Result { return invalid }
	if err := b.w.ProcessTask(b.ctx, tasks.NewChunk(tasks.Chunk{Job: other, Chunk: 0})); err != nil {
		t.Fatal(err) // rejected: it awaits no answer
	}
	insp := asynq.NewInspectorFromRedisClient(b.store.Redis())
	for _, j := range []struct {
		id   string
		wait time.Duration
	}{{b.job, time.Hour}, {other, 2 * time.Hour}} {
		// As their finalize tasks did: waiting, with no task queued.
		if err := insp.DeleteTask(tasks.Queue, tasks.Finalize{Job: j.id}.ID()); err != nil {
			t.Fatalf("the finalize task the last chunk of %s queued: %v", j.id, err)
		}
		if ok, err := b.store.BeginAwait(b.ctx, j.id, 0, j.wait); err != nil || !ok {
			t.Fatalf("BeginAwait(%s) = %v, %v", j.id, ok, err)
		}
	}
	if _, err := b.w.CheckAwaiting(b.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := insp.GetTaskInfo(tasks.Queue, tasks.Finalize{Job: other}.ID()); err != nil {
		t.Errorf("finalize of the job with every answer: %v; want enqueued", err)
	}
	if _, err := insp.GetTaskInfo(tasks.Queue, tasks.Finalize{Job: b.job}.ID()); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("finalize of the job still waiting: %v; want none", err)
	}
}
