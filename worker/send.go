package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/internal/sleep"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/ratelimit"
	"github.com/capcheck/capcheck/tasks"
)

// chunkRun is the state of one chunk being handled. Its lanes (lanes.go)
// settle its ranges at once: what they share is guarded by mu or atomic.
type chunkRun struct {
	w       *Worker
	c       tasks.Chunk
	numbers []string // E.164, one per chunk entry
	log     *slog.Logger
	calls   atomic.Int64 // API calls sent
	await   *awaitRef    // the job waits for callbacks: register accepted numbers
	held    *held        // the run's hold on the chunk; nil when not held

	mu    sync.Mutex
	abort string   // why the job was aborted; "" while it runs
	lanes *laneSet // the round's lanes (sendPending)
}

func (w *Worker) newChunkRun(c tasks.Chunk, entries []jobstore.Entry, abort string, log *slog.Logger) *chunkRun {
	numbers := make([]string, len(entries))
	for i, e := range entries {
		numbers[i] = e.Number
	}
	return &chunkRun{w: w, c: c, numbers: numbers, log: log, abort: abort}
}

// laneSet returns the run's lanes, nil before its first round.
func (cr *chunkRun) laneSet() *laneSet {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.lanes
}

// aborted returns why the job was aborted, "" while it runs.
func (cr *chunkRun) aborted() string {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.abort
}

// setAborted notes why the job was aborted (reason "" notes nothing: an
// abort is not undone) and returns the reason the run goes by.
func (cr *chunkRun) setAborted(reason string) string {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if reason != "" {
		cr.abort = reason
	}
	return cr.abort
}

// todo is a range still to settle.
type todo struct {
	jobstore.Range
	// knownBad says the range holds an invalid number for sure: its parent
	// was refused and its left sibling accepted. Of several numbers, it is
	// split without a call.
	knownBad bool
	// right is the sibling to mark knownBad when this left half is accepted.
	right *todo
}

// settle settles t: it sends its numbers (with retries) and queues the
// outcome in the lane's outbox (written before the lane's next call). It
// returns the halves of t to settle next, right one first, when t is split.
func (cr *chunkRun) settle(ctx context.Context, lo *laneOutbox, t *todo) ([]*todo, error) {
	abort := cr.aborted()
	if abort == "" && cr.w.draining() {
		return nil, ErrDraining
	}
	if t.knownBad && t.Hi-t.Lo > 1 && abort == "" {
		o := jobstore.Outcome{Lo: t.Lo, Hi: t.Hi, Split: true, Attempts: t.Attempts}
		cr.record(lo, o, jobstore.Counters{})
		return halves(t.Range, t.Attempts), nil
	}
	d, err := cr.send(ctx, lo, t.Range)
	if err != nil {
		return nil, err
	}
	if d.verb == settle && d.outcome.Status == jobstore.Accepted {
		// On halt, as the outbox writes: a 202 answered as the run was
		// stopped is recorded all the same.
		if err := cr.registerAwaited(cr.w.halt, t.Range); err != nil {
			return nil, err
		}
	}
	if d.verb == settle && d.outcome.Status == jobstore.Rejected {
		if err := cr.rememberRejected(ctx, d.outcome); err != nil {
			return nil, err
		}
	}
	cr.record(lo, d.outcome, d.calls)
	switch {
	case d.verb == split:
		cr.log.Debug("batch refused as invalid: bisecting", "lo", t.Lo, "hi", t.Hi, "attempt", d.outcome.Attempts)
		return halves(t.Range, d.outcome.Attempts), nil
	case d.outcome.Status == jobstore.Accepted && t.right != nil:
		t.right.knownBad = true
	}
	return nil, nil
}

// halves are the halves of r, each starting with attempts, right one first.
func halves(r jobstore.Range, attempts int) []*todo {
	mid := r.Mid()
	right := &todo{Range: jobstore.Range{Lo: mid, Hi: r.Hi, Attempts: attempts}}
	left := &todo{Range: jobstore.Range{Lo: r.Lo, Hi: mid, Attempts: attempts}, right: right}
	return []*todo{right, left}
}

// record queues o, with the counters of its calls, in the lane's outbox.
func (cr *chunkRun) record(lo *laneOutbox, o jobstore.Outcome, calls jobstore.Counters) {
	lo.add(jobstore.Record{Job: cr.c.Job, Gen: cr.c.Gen, Chunk: cr.c.Chunk, Outcome: o, Calls: calls})
}

// send sends r's numbers until an answer decides them (see decide) or the
// job is aborted, and returns the decision to record (settle or split).
// Each call waits on the fleet limiter, then checks that the job was not
// aborted meanwhile. Waits end too when another lane of the run fails.
func (cr *chunkRun) send(ctx context.Context, lo *laneOutbox, r jobstore.Range) (decision, error) {
	waitCtx, cancel := cr.w.waitContext(cr.laneSet().waitParent(ctx))
	defer cancel()
	tries := 0
	for {
		sendCtx, abort, err := cr.permit(ctx, waitCtx, lo)
		if err != nil {
			return decision{}, err
		}
		if abort != "" {
			return decision{verb: settle, outcome: notSent(r, tries, abort)}, nil
		}
		cr.w.calling.Add(1)
		res := cr.w.api.Check(sendCtx, cr.numbers[r.Lo:r.Hi])
		cr.w.calling.Add(-1)
		if errors.Is(res.Err, capapi.ErrNotSent) && ctx.Err() == nil {
			// The permit was lost before a byte was written (its
			// re-check failed): no call was made; wait for another.
			cr.log.Debug("request not sent: permit lost", "cause", res.Err)
			continue
		}
		cr.calls.Add(1)
		cr.w.m.apiRequests.WithLabelValues(res.Class.String()).Inc()
		cr.w.m.apiDuration.Observe(res.Latency.Seconds())
		if res.BodyErr != nil {
			cr.w.warnUnreadBody(cr.log, res)
		}
		// The call's logger is built only for what is logged: not per call.
		log := func() *slog.Logger { return cr.log.With("lo", r.Lo, "hi", r.Hi, "attempt", r.Attempts+tries+1) }
		if cr.log.Enabled(ctx, slog.LevelDebug) {
			log().Debug("api call", "result", res.Class.String(), "status", res.StatusCode, "latency", res.Latency)
		}
		d := decide(answer{res: res, r: r, tries: tries, at: time.Now().UnixMilli(), canceled: ctx.Err() != nil}, cr.w.policy)
		switch d.verb {
		case settle, split:
			if d.outcome.Status == jobstore.Failed {
				log().Warn("numbers failed after retries", "cause", cause(res))
			}
			return d, nil
		case abortJob:
			reason, err := cr.abortJob(ctx, d.reason)
			d.outcome.Message = abortedMessage(reason)
			return d, err
		case handBack:
			// Canceled in flight: the outcome is unknown, the chunk will be
			// resumed and this call repeated.
			return d, ctx.Err()
		case pauseFleet:
			err = cr.pauseFleet(ctx, waitCtx, d, log())
		case retryAfter:
			tries++
			cr.w.m.retries.Inc()
			log().Info("transient API error: retrying", "cause", cause(res), "backoff", d.wait)
			err = cr.retryAfter(ctx, waitCtx, d)
		}
		if err != nil {
			return decision{}, err
		}
	}
}

// unreadWarnEvery is how often at most a worker logs a 202 whose body it
// could not read: one such answer usually comes with many (a proxy's page,
// a change of the API), and the metric counts them all.
const unreadWarnEvery = 10 * time.Minute

// warnUnreadBody counts a 202 whose body could not be read (its numbers are
// accepted) and logs it, the first one and then at most once every
// unreadWarnEvery.
func (w *Worker) warnUnreadBody(log *slog.Logger, res capapi.Result) {
	w.m.unreadBody.Inc()
	n := w.unreadBodies.Add(1)
	now, last := time.Now().UnixNano(), w.unreadWarnAt.Load()
	if last != 0 && now-last < int64(unreadWarnEvery) || !w.unreadWarnAt.CompareAndSwap(last, now) {
		return
	}
	log.Warn("API accepted numbers with an unreadable answer: recorded accepted, without the provider's code and message",
		"cause", res.BodyErr, "unread_answers", n, "next_warning_after", unreadWarnEvery)
}

// permit waits for the fleet limiter unless the job is aborted, and returns
// the context to send under and why the job was aborted ("" while it runs):
// the job is checked before the wait and after it, so a job aborted by
// another worker's 401 (or another lane's) while this call waited costs no
// call.
func (cr *chunkRun) permit(ctx, waitCtx context.Context, lo *laneOutbox) (context.Context, string, error) {
	w := cr.w
	if err := w.holdReady(ctx, cr.held); err != nil {
		return nil, "", err
	}
	// Aborted by a call of this worker?
	if abort := cr.setAborted(w.abortSettled(ctx, cr.c)); abort != "" {
		return ctx, abort, nil
	}
	if err := cr.handBackErr(waitCtx, nil); err != nil {
		return nil, "", err
	}
	if _, ok := w.lim.(permitTaker); !ok {
		// No place in the limiter's queue to write them in: now (not
		// counted as a wait for a permit, which makes extra lanes spare).
		if err := lo.flush(); err != nil {
			return nil, "", err
		}
	}
	begin := time.Now()
	w.permitWaits.Add(1)
	sendCtx, err := w.take(ctx, waitCtx, cr.held, lo)
	w.permitWaits.Add(-1)
	w.m.rateWait.Observe(time.Since(begin).Seconds())
	var oe outboxError
	if errors.As(err, &oe) {
		return nil, "", oe.err
	}
	if err != nil {
		return nil, "", cr.handBackErr(waitCtx, fmt.Errorf("waiting for the rate limit: %w", err))
	}
	// Written in the wait, unless the limiter has no place for it.
	if err := lo.flush(); err != nil {
		return nil, "", err
	}
	reason, err := w.jobAborted(ctx, cr.c)
	if err != nil {
		return nil, "", fmt.Errorf("reading job %s: %w", cr.c.Job, err)
	}
	return sendCtx, cr.setAborted(reason), nil
}

// take waits on the fleet limiter and returns the context to send under:
// the API client checks the permit (with a limiter that hands out permits)
// and the run's hold again when the request is about to be written, so a
// stall after the wait cannot send it late or after a takeover. With a
// limiter that hands out permits, the lane's outbox is written in the
// permit's round trip to Redis when the limiter shares the store's client
// (and records have no hook), else while the lane is next in its queue (an
// outboxError when that fails).
func (w *Worker) take(ctx, waitCtx context.Context, hd *held, lo *laneOutbox) (context.Context, error) {
	g := holdGate{w: w, hd: hd}
	pt, ok := w.lim.(permitTaker)
	if !ok {
		_, err := w.lim.Wait(waitCtx)
		return capapi.WithSendGate(ctx, g), err
	}
	var p *ratelimit.Permit
	var err error
	if w.rider != nil {
		p, err = w.rider.TakeRiding(waitCtx, outboxRider{lo})
	} else {
		p, err = pt.TakeAfter(waitCtx, outboxRider{lo}.Alone)
	}
	if err != nil {
		return nil, err
	}
	g.permit = p
	return capapi.WithSendGate(ctx, g), nil
}

// outboxError is a lane's outcomes that could not be written, met while it
// waited for a permit.
type outboxError struct{ err error }

func (e outboxError) Error() string { return e.err.Error() }
func (e outboxError) Unwrap() error { return e.err }

// holdGate is the send gate of a request: its permit's, then its run's hold.
type holdGate struct {
	w      *Worker
	hd     *held
	permit capapi.SendGate // nil without one
}

func (g holdGate) Ready(ctx context.Context) error {
	if g.permit != nil {
		if err := g.permit.Ready(ctx); err != nil {
			return err
		}
	}
	return g.w.holdReady(ctx, g.hd)
}

// pauseFleet carries out a 429: the whole fleet pauses for d.wait.
func (cr *chunkRun) pauseFleet(ctx, waitCtx context.Context, d decision, log *slog.Logger) error {
	if d.capped {
		// A bogus Retry-After (a day, a far date) must not stop every job
		// of the fleet.
		log.Warn("429 Retry-After capped", "cap", pauseMax)
	}
	cr.w.m.rateLimited.Inc()
	log.Warn("API answered 429: pausing the fleet", "pause", d.wait)
	if err := cr.w.store.Add(ctx, cr.c.Job, d.calls); err != nil {
		return err
	}
	if err := cr.w.lim.Pause(ctx, d.wait); err != nil {
		// Without the shared pause, at least this caller waits.
		log.Warn("could not pause the fleet; waiting here", "err", err)
		if err := sleep.For(waitCtx, d.wait); err != nil {
			return cr.handBackErr(waitCtx, err)
		}
	}
	return nil
}

// retryAfter counts a call answered with a transient error and waits d.wait.
func (cr *chunkRun) retryAfter(ctx, waitCtx context.Context, d decision) error {
	if err := cr.w.store.Add(ctx, cr.c.Job, d.calls); err != nil {
		return err
	}
	if err := sleep.For(waitCtx, d.wait); err != nil {
		return cr.handBackErr(waitCtx, err)
	}
	return nil
}

// waitContext is the context of limiter waits and backoffs: they end when
// the worker drains, and a little before asynq's task deadline (the chunk
// then yields); a call in flight does not.
func (w *Worker) waitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	var waitCtx context.Context
	var cancel context.CancelFunc
	if dl, ok := ctx.Deadline(); ok {
		waitCtx, cancel = context.WithDeadline(ctx, dl.Add(-yieldMargin))
	} else {
		waitCtx, cancel = context.WithCancel(ctx)
	}
	stopAfter := context.AfterFunc(w.drain, cancel)
	return waitCtx, func() { stopAfter(); cancel() }
}

// handBackErr says why a wait on waitCtx must end, if it must: ErrDraining
// when the worker drains, ErrYielding when the task's deadline is near (both
// hand the chunk back without using a retry), else err.
func (cr *chunkRun) handBackErr(waitCtx context.Context, err error) error {
	switch {
	case cr.w.draining():
		return ErrDraining
	case errors.Is(waitCtx.Err(), context.DeadlineExceeded):
		return ErrYielding
	}
	return err
}

// abortJob aborts the job after an answer that no retry can fix, for reason
// (what to fix, never the key). It returns the reason the job shows: the
// first one recorded wins.
func (cr *chunkRun) abortJob(ctx context.Context, reason string) (string, error) {
	// This worker's other calls of the job (other lanes, other chunks) wait
	// at their next permit until the abort is written, then stop by the
	// note, without reading Redis. Noted only once written: they settle
	// their numbers "not sent" by it, which an abort that failed to be
	// written must not make them do.
	key, written := abortKey(cr.c), make(chan struct{})
	cr.w.aborting.Store(key, written)
	defer func() {
		cr.w.aborting.CompareAndDelete(key, written)
		close(written)
	}()
	if err := cr.w.store.Abort(ctx, cr.c.Job, reason); err != nil {
		return reason, fmt.Errorf("aborting job %s: %w", cr.c.Job, err)
	}
	cr.w.aborted.Store(key, reason)
	if got, err := cr.w.store.Aborted(ctx, cr.c.Job); err == nil && got != "" {
		reason = got
		cr.w.aborted.Store(key, reason)
	}
	cr.setAborted(reason)
	cr.log.Error("job aborted: no more API calls for it", "reason", reason)
	return reason, nil
}
