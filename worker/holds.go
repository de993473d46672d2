package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
)

// A worker holds each chunk it runs in the job store (jobstore.TakeRun):
// one run holds a chunk at a time. It renews its holds every holdEvery
// while it holds any; a hold lapses holdTTL after its last renewal. Every
// worker claims lapsed holds on its tick and enqueues a takeover of their
// chunks, so the chunks of a worker that died (SIGKILL, a lost host) go on
// within holdTTL+holdEvery and a task pick-up, not when asynq's lease on the
// task expires (30 s, and its recoverer runs once a minute). A task whose
// worker died before holding its chunk is found in asynq's leases instead
// (orphans.go).
//
// A run writes a request only while its hold is surely its own: before
// local time renewedAt+holdTTL-holdMargin, renewedAt being when its last
// confirmed renewal was sent (Redis set the lapse after that). A worker too
// starved to renew thus stops before another one can take its chunk over,
// and learns at its next renewal that the hold is gone: it hands the task
// back without sending again. Only a request in flight when the hold lapsed
// (as at a SIGKILL) can be sent again; its outcome, recorded by the first
// run, counts once (the chunk's settled bitmap).
const (
	holdEvery = 250 * time.Millisecond
	holdTTL   = time.Second
	// holdMargin covers a stall between the check and the request's first
	// byte, and the clocks' drift over holdTTL.
	holdMargin = 200 * time.Millisecond
	// idleClaimEvery is the tick of a worker that holds nothing: it only
	// claims the lapsed holds of others.
	idleClaimEvery = time.Second
	// claimMax bounds the lapsed holds one tick claims.
	claimMax = 64
	// retakeMax bounds the takeovers of one chunk: one that kills every
	// worker that runs it is left to asynq's retries, which archive it.
	retakeMax = 3
	// heldRetry is when a task that found its chunk held runs again: once
	// that hold, were its run gone, has lapsed and been claimed.
	heldRetry = holdTTL + holdEvery
)

var (
	// errHeldElsewhere: another live run holds the chunk. Its task is
	// handed back (tried again after heldRetry), not dropped: that run may
	// end unsettled.
	errHeldElsewhere = fmt.Errorf("another run of the chunk holds it: %w", ErrHandedBack)
	// errHoldLost stops a run whose hold lapsed and was taken: its task is
	// handed back, and finds the chunk held by the takeover (or settles it).
	errHoldLost = fmt.Errorf("the chunk's hold was taken over: %w", ErrHandedBack)
)

// holds are the chunk runs this worker holds.
type holds struct {
	mu    sync.Mutex
	owner string // this worker's prefix of its members
	runs  map[jobstore.Run]*held
	epoch time.Time // the monotonic origin of held.until
	// For tests: starved stops the ticks; skew moves the clock ahead;
	// stall, set before Start, runs before each hold is taken.
	starved atomic.Bool
	skew    atomic.Int64
	stall   func(context.Context)
}

// held is one run's hold.
type held struct {
	run   jobstore.Run
	until atomic.Int64 // ns since epoch: may write before it
	lost  atomic.Bool  // claimed or taken: stop
}

func newHolds() *holds {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &holds{owner: hex.EncodeToString(b), runs: make(map[jobstore.Run]*held), epoch: time.Now()}
}

// run is the job store's run of c by this worker: the chunk's name, and the
// owner then the task's payload.
func (h *holds) run(c tasks.Chunk) jobstore.Run {
	b, _ := json.Marshal(c) // cannot fail: strings and ints
	return jobstore.Run{Chunk: chunkName(c), Member: h.owner + " " + string(b)}
}

// chunkName names c's chunk in the holds: job/generation/index.
func chunkName(c tasks.Chunk) string { return fmt.Sprintf("%s/%d/%d", c.Job, c.Gen, c.Chunk) }

func (h *holds) since() int64 { return int64(time.Since(h.epoch)) + h.skew.Load() }

// confirm records a renewal of hd sent at sent (ns since epoch).
func (hd *held) confirm(sent int64) {
	until := sent + int64(holdTTL-holdMargin)
	for {
		cur := hd.until.Load()
		if cur >= until || hd.until.CompareAndSwap(cur, until) {
			return
		}
	}
}

// hold holds c for the chunk's run and returns what releases it, or
// errHeldElsewhere. Only a started worker holds (it renews them): h is nil
// then, and the run is not fenced.
func (w *Worker) hold(ctx context.Context, c tasks.Chunk) (hd *held, release func(), err error) {
	w.mu.Lock()
	started := w.started
	w.mu.Unlock()
	if !started {
		return nil, func() {}, nil
	}
	if stall := w.holds.stall; stall != nil {
		stall(ctx)
	}
	run := w.holds.run(c)
	w.holds.mu.Lock()
	_, mine := w.holds.runs[run]
	w.holds.mu.Unlock()
	if mine {
		return nil, nil, errHeldElsewhere // asynq re-delivered it to this worker
	}
	sent := w.holds.since()
	ok, err := w.store.TakeRun(ctx, holdTTL, run)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, errHeldElsewhere
	}
	hd = &held{run: run}
	hd.confirm(sent)
	w.holds.mu.Lock()
	w.holds.runs[run] = hd
	w.holds.mu.Unlock()
	return hd, func() { w.release(ctx, hd) }, nil
}

func (w *Worker) release(ctx context.Context, hd *held) {
	w.holds.mu.Lock()
	delete(w.holds.runs, hd.run)
	w.holds.mu.Unlock()
	if hd.lost.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := w.store.ReleaseRun(ctx, hd.run); err != nil {
		// The hold lapses and another worker takes over a settled
		// chunk: a task that finds nothing to send.
		w.log.Debug("could not release a chunk run", "err", err)
	}
}

// holdReady lets a request of hd's run be written while the hold is surely
// its own; past that it renews the hold first, and says errHoldLost when the
// hold is gone.
func (w *Worker) holdReady(ctx context.Context, hd *held) error {
	if hd == nil {
		return nil
	}
	if !hd.lost.Load() && w.holds.since() < hd.until.Load() {
		return nil
	}
	if !hd.lost.Load() {
		// The ticker is late (a starved process): renew this hold now.
		w.renew(ctx, 0, []*held{hd})
	}
	if hd.lost.Load() || w.holds.since() >= hd.until.Load() {
		return errHoldLost
	}
	return nil
}

// keepHolds renews this worker's holds and takes over lapsed ones, every
// holdEvery while it holds any and every idleClaimEvery otherwise, until ctx
// ends.
func (w *Worker) keepHolds(ctx context.Context) {
	after(ctx, idleClaimEvery, nil, func() time.Duration {
		if w.renewHolds(ctx) {
			return holdEvery
		}
		return idleClaimEvery
	})
}

// renewHolds renews this worker's holds and takes over lapsed ones, once.
// It reports whether the worker holds any.
func (w *Worker) renewHolds(ctx context.Context) bool {
	if w.holds.starved.Load() {
		return false
	}
	w.holds.mu.Lock()
	hds := make([]*held, 0, len(w.holds.runs))
	for _, hd := range w.holds.runs {
		if !hd.lost.Load() {
			hds = append(hds, hd)
		}
	}
	w.holds.mu.Unlock()
	w.renew(ctx, claimMax, hds)
	w.adoptOrphans(ctx)
	return len(hds) > 0
}

// renew renews the holds hds and takes over up to claim lapsed ones.
func (w *Worker) renew(ctx context.Context, claim int, hds []*held) {
	runs := make([]jobstore.Run, len(hds))
	for i, hd := range hds {
		runs[i] = hd.run
	}
	sent := w.holds.since()
	lost, lapsed, err := w.store.RenewRuns(ctx, holdTTL, claim, runs...)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not renew the holds of the chunks running here; they stop sending until renewed", "err", err)
		}
		return
	}
	for _, r := range lost {
		for _, hd := range hds {
			if hd.run == r {
				hd.lost.Store(true)
			}
		}
	}
	for _, hd := range hds {
		if !hd.lost.Load() {
			hd.confirm(sent)
		}
	}
	if err := w.takeOver(ctx, lapsed); err != nil && ctx.Err() == nil {
		w.log.Warn("could not take over the chunks of a worker gone", "err", err)
	}
}

// takeOver enqueues a takeover of each chunk whose hold lapsed.
func (w *Worker) takeOver(ctx context.Context, lapsed []jobstore.Run) error {
	n := 0
	for _, r := range lapsed {
		_, payload, _ := strings.Cut(r.Member, " ")
		c, err := tasks.ParseChunk(asynq.NewTask(tasks.TypeChunk, []byte(payload)))
		if err != nil {
			w.log.Warn("unreadable chunk hold dropped", "err", err)
			continue
		}
		took, err := w.retake(ctx, c, "chunk of a worker gone taken over")
		if err != nil {
			return err
		}
		if took {
			n++
		}
	}
	if n > 0 {
		tasks.Announce(ctx, w.store.Redis())
	}
	return nil
}

// retake enqueues a takeover of c, the task of a run gone (Retake+1, up to
// retakeMax), and logs msg unless it was enqueued already (its ID is the
// fleet's: another worker's takeover, or the hold's and the lease's of one
// task). It reports whether it enqueued it; the caller announces it.
func (w *Worker) retake(ctx context.Context, c tasks.Chunk, msg string) (bool, error) {
	log := w.log.With("job", c.Job, "chunk", c.Chunk, "retake", c.Retake)
	if c.Retake >= retakeMax {
		log.Warn("chunk lost its worker again; left to asynq's lease on its task")
		return false, nil
	}
	c.Retake++
	took, err := tasks.Enqueue(ctx, w.enq, tasks.NewChunk(c))
	switch {
	case err != nil:
		return false, err
	case took:
		log.Info(msg)
	default:
		// Another worker took it over first.
		log.Debug("chunk's takeover already enqueued")
	}
	return took, nil
}

// after calls fn after d, then after each wait fn returns, until ctx ends;
// a receive from wake (nil: none) calls it at once.
func after(ctx context.Context, d time.Duration, wake <-chan struct{}, fn func() time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		t.Reset(fn())
	}
}
