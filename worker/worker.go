package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/ratelimit"
	"github.com/capcheck/capcheck/tasks"
)

// Checker calls the capability-check API; *capapi.Client satisfies it.
type Checker interface {
	Check(ctx context.Context, numbers []string) capapi.Result
}

// warmer opens the API client's connections ahead of a job's first request;
// *capapi.Client satisfies it.
type warmer interface {
	Warm(ctx context.Context) error
}

// permitTaker is a Limiter whose permits are checked again when the request
// is about to be written (capapi.WithSendGate); *ratelimit.Limiter
// satisfies it.
type permitTaker interface {
	TakeAfter(ctx context.Context, first func(context.Context) error) (*ratelimit.Permit, error)
}

// permitRider is a permitTaker that can write the lanes' outcomes in the
// round trip of a permit (ratelimit.Rider); *ratelimit.Limiter satisfies
// it. It is used when its client is the store's.
type permitRider interface {
	TakeRiding(ctx context.Context, r ratelimit.Rider) (*ratelimit.Permit, error)
	Client() ratelimit.Scripter
}

// Limiter is the fleet's rate limit; *ratelimit.Limiter satisfies it.
type Limiter interface {
	// Wait blocks until one request may be sent; an error means no permit.
	Wait(ctx context.Context) (time.Duration, error)
	// Pause stops the whole fleet from sending for d.
	Pause(ctx context.Context, d time.Duration) error
}

// A chunk handler stops before its chunk is settled in three ways: it
// drains (the worker shuts down), it yields (its task's deadline is near),
// or the job is aborted (a 401/403 stopped it; its numbers are then
// recorded failed, so the chunk still settles). Draining and yielding hand
// the chunk back: what was recorded stays, and asynq re-queues the task at
// once without counting a failure, so another replica resumes it.
var (
	// ErrHandedBack is what ErrDraining and ErrYielding are.
	ErrHandedBack = errors.New("chunk handed back")
	// ErrDraining is returned by the chunk handler when the worker drains:
	// the chunk's calls in flight were recorded and the rest is handed back.
	ErrDraining = fmt.Errorf("worker is draining: %w", ErrHandedBack)
	// ErrYielding is returned by the chunk handler a little before its
	// task's deadline: the rest of the chunk is handed back.
	ErrYielding = fmt.Errorf("task deadline near, yielding: %w", ErrHandedBack)
)

// Asynq settings (see docs/design.md): short check intervals, because the
// defaults (1s, 5s) turn a re-queue with no delay into seconds of idling. An
// idle server sleeps 1/2 to 3/2 of taskCheckInterval between polls, after
// idleWait's wait for an announcement.
const (
	taskCheckInterval        = 50 * time.Millisecond
	delayedTaskCheckInterval = 500 * time.Millisecond
	// retryDelayMax caps asynq's own retry delay (crashes, Redis errors).
	retryDelayMax = time.Minute
	// pauseMax caps the fleet pause a 429's Retry-After asks for: the
	// limiter's own cap.
	pauseMax = ratelimit.PauseMax
	// yieldMargin is how long before its task deadline a chunk hands itself
	// back: more than one API call (its timeout) takes.
	yieldMargin = 2 * time.Minute
	// waitHandlersMin is the least Shutdown waits, after canceling them,
	// for handlers to return.
	waitHandlersMin = 100 * time.Millisecond
)

// Worker is an asynq server that handles capcheck's chunk and finalize tasks.
// Any number of workers, in one process or many, may share one Redis.
type Worker struct {
	store *jobstore.Store
	api   Checker
	lim   Limiter
	// rider is lim when the lanes' outcomes ride its permits' round trips
	// (see take), nil otherwise.
	rider  permitRider
	cfg    Config
	policy policy
	log    *slog.Logger
	m      *Metrics
	enq    *asynq.Client // enqueues finalize tasks, on the store's client
	mux    *asynq.ServeMux
	caps   *capstore.Store

	// Shutdown order: drain is canceled first (no new calls, limiter
	// waits and backoffs end, handlers hand their chunks back); halt is
	// canceled when the shutdown timeout is nearly up (in-flight calls and
	// Redis operations of handlers are canceled).
	drain      context.Context
	startDrain context.CancelFunc
	halt       context.Context
	haltNow    context.CancelFunc
	handlers   sync.WaitGroup
	bg         sync.WaitGroup // the sweep
	// holds are the chunk runs held in the job store (holds.go), renewed
	// until stopHolds, once the handlers have returned.
	holds     *holds
	orphans   orphans // the hold tick's look at asynq's leases (orphans.go)
	holdsCtx  context.Context
	stopHolds context.CancelFunc

	// aborted holds the jobs this worker saw aborted (abortKey → reason),
	// so its other chunks of the job skip the limiter wait without asking
	// Redis. A retry is a new generation, which is not aborted.
	aborted sync.Map
	// aborting holds the aborts this worker is writing (abortKey → a
	// channel closed once written or failed): the job's other calls wait
	// for the outcome rather than send, or settle their numbers by an abort
	// that may never be written.
	aborting sync.Map
	// abortReads holds, per job, when its abort reason was last read
	// (job → *abortRead; see jobAborted); abortWatch starts the watch that
	// resets them.
	abortReads sync.Map
	abortWatch sync.Once
	// lanes counts the lanes of the chunk runs (lanes.go).
	lanes atomic.Int64
	// calling counts the lanes in a call: all but the one about to take a
	// permit while the calls' latency, not the rate, bounds the worker
	// (lanes.go).
	calling atomic.Int64
	// unreadBodies counts the 202s whose body could not be read, and
	// unreadWarnAt is when one was last logged (Unix ns; see warnUnreadBody).
	unreadBodies atomic.Int64
	unreadWarnAt atomic.Int64
	// permitWaits counts the lanes waiting for a permit: several while the
	// limiter, not the calls, bounds the worker (lanes.go).
	permitWaits atomic.Int64
	// runs are the chunk runs settling ranges (lanes.go).
	runs runSet
	// outbox holds the lanes' outcomes until they are written (outbox.go).
	outbox outbox
	// awaitWake makes the watch of jobs awaiting callbacks look now.
	awaitWake chan struct{}

	mu       sync.Mutex
	srv      *asynq.Server
	started  bool
	shutOnce sync.Once
}

// New returns a worker that takes tasks from the Redis of store (one
// client for the job store and the queue), calls the API through api, each
// call after waiting on lim. It returns an error that says what to fix when
// cfg is not usable.
func New(store *jobstore.Store, api Checker, lim Limiter, cfg Config) (*Worker, error) {
	switch {
	case store == nil:
		return nil, errors.New("worker: the job store is nil")
	case api == nil:
		return nil, errors.New("worker: the API client is nil")
	case lim == nil:
		return nil, errors.New("worker: the rate limiter is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Worker{
		store: store, api: api, lim: lim, cfg: cfg, policy: newPolicy(cfg),
		log: cfg.Logger, m: cfg.Metrics,
		enq:       asynq.NewClientFromRedisClient(store.Redis()),
		mux:       asynq.NewServeMux(),
		caps:      capstore.New(store.Redis(), capstore.Options{}),
		awaitWake: make(chan struct{}, 1),
	}
	// Riding puts the writes between a slot's start and its request: not
	// when a record also waits for a journal's sync, and only on the
	// store's own Redis.
	if pr, ok := lim.(permitRider); ok && any(pr.Client()) == any(store.Redis()) && !store.RecordHooked() {
		w.rider = pr
	}
	w.mux.HandleFunc(tasks.TypeChunk, w.processChunk)
	w.mux.HandleFunc(tasks.TypeFinalize, w.processFinalize)
	w.holds = newHolds()
	w.holdsCtx, w.stopHolds = context.WithCancel(context.Background())
	w.drain, w.startDrain = context.WithCancel(context.Background())
	w.halt, w.haltNow = context.WithCancel(context.Background())
	return w, nil
}

// Config returns the worker's configuration, defaults filled in.
func (w *Worker) Config() Config { return w.cfg }

// Run serves tasks until ctx is done, then shuts down gracefully (see
// [Worker.Shutdown]). It returns an error only when the server cannot start.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	w.Shutdown()
	return nil
}

// Start starts serving tasks in the background. Call Shutdown to stop.
func (w *Worker) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.started:
		return errors.New("worker: already started")
	case w.draining():
		return errors.New("worker: already shut down")
	}
	idle := &idleWait{wake: make(chan struct{}, 1), drain: w.drain.Done()}
	w.store.Redis().AddHook(idle)
	srv := asynq.NewServerFromRedisClient(w.store.Redis(), asynq.Config{
		Concurrency:              w.cfg.Concurrency,
		Queues:                   map[string]int{tasks.Queue: 1},
		TaskCheckInterval:        taskCheckInterval,
		DelayedTaskCheckInterval: delayedTaskCheckInterval,
		ShutdownTimeout:          w.cfg.ShutdownTimeout,
		IsFailure:                w.isFailure,
		RetryDelayFunc:           w.retryDelay,
		ErrorHandler:             asynq.ErrorHandlerFunc(w.handleError),
		Logger:                   newAsynqLogger(w.log),
		LogLevel:                 asynqLevel(w.log),
		HealthCheckFunc: func(err error) {
			if err != nil {
				w.log.Warn("redis health check failed", "err", err)
			}
		},
	})
	if err := srv.Start(w); err != nil {
		return fmt.Errorf("worker: starting: %w", err)
	}
	w.srv, w.started = srv, true
	w.abortWatch.Do(w.startWatchingAborts) // before the first task, not with it
	w.bg.Add(1)
	go func() { defer w.bg.Done(); w.listenForTasks(w.drain, idle) }()
	w.bg.Add(1)
	go func() { defer w.bg.Done(); w.prepare(w.drain) }()
	w.bg.Add(1)
	go func() { defer w.bg.Done(); w.keepHolds(w.holdsCtx) }()
	w.bg.Add(1)
	go func() { defer w.bg.Done(); w.sweep(w.drain) }()
	w.bg.Add(1)
	go func() { defer w.bg.Done(); w.watchAwaiting(w.drain) }()
	w.bg.Add(1)
	go func() { defer w.bg.Done(); w.sweepMemory(w.drain) }()
	return nil
}

// Shutdown drains the worker: it takes no more tasks, lets calls in flight
// finish and be recorded, and hands the rest of their chunks back to the
// queue for another replica. Calls still running after
// Config.ShutdownTimeout are canceled. Shutting down twice, or a worker never
// started, is harmless.
func (w *Worker) Shutdown() {
	w.shutOnce.Do(func() {
		w.mu.Lock()
		srv := w.srv
		w.mu.Unlock()

		w.startDrain()
		// Cancel stragglers a little before asynq's own deadline, so that
		// their handlers return ErrDraining (re-queued at once) rather than
		// being abandoned by asynq.
		end := time.Now().Add(w.cfg.ShutdownTimeout)
		deadline := end.Add(-min(w.cfg.ShutdownTimeout/10, time.Second))
		t := time.AfterFunc(time.Until(deadline), w.haltNow)
		if srv != nil {
			srv.Shutdown()
		}
		// Handlers called by another server (ProcessTask) get the same time.
		waitTimeout(&w.handlers, time.Until(deadline))
		t.Stop()
		w.haltNow()
		// Canceled handlers return at once; do not outlive the timeout for
		// one that does not.
		if !waitTimeout(&w.handlers, max(time.Until(end), waitHandlersMin)) {
			w.log.Warn("worker: handlers still running after shutdown; their chunks were re-queued")
		}
		w.stopHolds()
		w.bg.Wait()
	})
}

// waitTimeout waits for wg at most d and reports whether it is done.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if d <= 0 {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Draining returns a channel closed when Shutdown begins, e.g. for a
// readiness probe to report the worker going away.
func (w *Worker) Draining() <-chan struct{} { return w.drain.Done() }

// abortedJob returns why this worker saw c's job (in c's generation)
// aborted, "" if it did not.
func (w *Worker) abortedJob(c tasks.Chunk) string {
	if r, ok := w.aborted.Load(abortKey(c)); ok {
		return r.(string)
	}
	return ""
}

// abortSettled is abortedJob once any abort of the job this worker is
// writing is written or has failed (or ctx ends).
func (w *Worker) abortSettled(ctx context.Context, c tasks.Chunk) string {
	if v, ok := w.aborting.Load(abortKey(c)); ok {
		select {
		case <-v.(chan struct{}):
		case <-ctx.Done():
		}
	}
	return w.abortedJob(c)
}

// jobGen is a job's generation: the key of an abort seen.
type jobGen struct {
	job string
	gen int
}

// abortKey is looked up before each call: a struct, not a formatted string.
func abortKey(c tasks.Chunk) jobGen { return jobGen{c.Job, c.Gen} }

// draining reports whether Shutdown has begun.
func (w *Worker) draining() bool { return w.drain.Err() != nil }

// ProcessTask handles one capcheck task, routed by its type; it makes
// Worker an asynq.Handler, so that a process may also serve it from a
// server of its own.
func (w *Worker) ProcessTask(ctx context.Context, t *asynq.Task) error {
	w.handlers.Add(1)
	defer w.handlers.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(w.halt, cancel)()

	h, pattern := w.mux.Handler(t)
	if pattern != t.Type() { // the mux also routes by prefix
		return fmt.Errorf("unknown task type %q: %w", t.Type(), asynq.SkipRetry)
	}
	return h.ProcessTask(ctx, t)
}

// isFailure tells asynq which errors use up a retry: not a chunk handed
// back (drained, yielded, or held by another run).
func (w *Worker) isFailure(err error) bool { return !errors.Is(err, ErrHandedBack) }

// retryDelay is asynq's delay before re-running a task that returned an
// error: heldRetry for a chunk held by another run, none for a chunk handed
// back (drained or yielded) or recovered from a dead worker (it has waited
// for the lease already), else 1s doubling per retry, capped at a minute,
// with jitter.
func (w *Worker) retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if errors.Is(err, errHeldElsewhere) {
		return heldRetry
	}
	if errors.Is(err, ErrHandedBack) || errors.Is(err, asynq.ErrLeaseExpired) {
		return 0
	}
	d := retryDelayMax
	if n < 6 {
		d = time.Second << n
	}
	return d/2 + rand.N(d/2+1)
}

// handleError is asynq's ErrorHandler. A chunk task that asynq gives up on
// (retries exhausted, or SkipRetry) still settles: its pending numbers are
// recorded failed and the chunk finished, so the job always finishes.
func (w *Worker) handleError(ctx context.Context, t *asynq.Task, err error) {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	// A chunk handed back (drained or yielded) is re-queued without using a
	// retry, even on its last one.
	dead := (retried >= maxRetry && w.isFailure(err)) || errors.Is(err, asynq.SkipRetry)
	log := w.log.With("task", t.Type(), "retried", retried)
	if !dead {
		if errors.Is(err, ErrHandedBack) {
			log.Debug("task handed back", "err", err)
		} else {
			log.Warn("task failed; asynq will retry it", "err", err)
		}
		return
	}
	// The handler's context may be canceled (lease lost, shutdown): the
	// settling must still reach Redis.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	switch t.Type() {
	case tasks.TypeChunk:
		c, perr := tasks.ParseChunk(t)
		if perr != nil {
			log.Error("unreadable chunk task dropped", "err", err)
			return
		}
		if gerr := w.giveUp(ctx, c, err); gerr != nil {
			// The sweep (sweep.go) settles it later from the archive.
			log.Error("could not settle a given-up chunk now; the sweep will", "err", gerr)
		}
	case tasks.TypeFinalize:
		log.Error("finalize gave up; rebuild the output files with capcheck export", "err", err)
	default:
		log.Error("task dropped", "err", err)
	}
}
