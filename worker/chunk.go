package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
)

// processChunk handles a chunk task: it sends the chunk's pending ranges one
// call at a time, records each outcome before the next call, and finishes
// the chunk when every number is settled.
func (w *Worker) processChunk(ctx context.Context, t *asynq.Task) error {
	c, err := tasks.ParseChunk(t)
	if err != nil {
		w.log.Error("unreadable chunk task dropped", "err", err)
		w.m.chunks.WithLabelValues(chunkError).Inc()
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	log := w.log.With("job", c.Job, "chunk", c.Chunk)
	start := time.Now()
	result, err := w.runChunk(ctx, c, log)
	if err != nil && !errors.Is(err, ErrDraining) && w.draining() && ctx.Err() != nil {
		// Canceled by Shutdown: hand the chunk back like any drained one.
		err = fmt.Errorf("%w: %w", ErrDraining, err)
	}
	switch {
	case errors.Is(err, jobstore.ErrStale):
		// The job was re-driven (or finished) while this ran: what it
		// recorded since is refused, and the new generation's task goes on.
		log.Info("chunk task outdated by a re-drive of its job: stopped", "gen", c.Gen)
		result, err = chunkStale, nil
	case errors.Is(err, ErrDraining):
		result = chunkDraining
		log.Info("chunk handed back for another worker")
	case err != nil:
		result = chunkError
	}
	w.m.chunkDur.Observe(time.Since(start).Seconds())
	w.m.chunks.WithLabelValues(result).Inc()
	return err
}

// runChunk does processChunk's work and returns the result for the
// capcheck_chunks_total metric.
func (w *Worker) runChunk(ctx context.Context, c tasks.Chunk, log *slog.Logger) (string, error) {
	job, err := w.store.Job(ctx, c.Job)
	if errors.Is(err, jobstore.ErrNotFound) {
		log.Warn("chunk task of a job that does not exist: skipped")
		return chunkStale, nil
	}
	if err != nil {
		return chunkError, err
	}
	if job.State.Finished() || job.Gen != c.Gen {
		log.Debug("stale chunk task: skipped", "state", job.State, "task_gen", c.Gen, "job_gen", job.Gen)
		return chunkStale, nil
	}
	entries, err := w.store.Chunk(ctx, c.Job, c.Chunk)
	if err != nil {
		return chunkError, err
	}
	numbers := make([]string, len(entries))
	for i, e := range entries {
		numbers[i] = e.Number
	}
	cr := &chunkRun{w: w, c: c, numbers: numbers, log: log, abort: job.Abort}
	// Usually one round. Another live run of this chunk (asynq re-delivered
	// it) can leave entries of this run's ranges unsettled when its outcome
	// covered some of them first: FinishChunk says so, and they are sent.
	for round := 0; ; round++ {
		outs, err := w.store.Outcomes(ctx, c.Job, c.Chunk)
		if err != nil {
			return chunkError, err
		}
		pending := jobstore.Pending(len(entries), w.cfg.BatchSize, outs)
		if len(outs) > 0 {
			log.Debug("resuming chunk", "recorded", len(outs), "pending_ranges", len(pending))
		}
		for _, r := range pending {
			if _, err := cr.settle(ctx, r, false); err != nil {
				return chunkError, err
			}
		}
		err = w.finishChunk(ctx, c, len(entries), log)
		if errors.Is(err, jobstore.ErrUnsettled) && round < 3 {
			continue
		}
		if err != nil {
			return chunkError, err
		}
		break
	}
	log.Debug("chunk done", "numbers", len(entries), "calls", cr.calls)
	return chunkDone, nil
}

// finishChunk marks the chunk settled and, when it was the job's last,
// enqueues the finalize task. Both steps are idempotent, so a task that
// dies between them is simply run again.
func (w *Worker) finishChunk(ctx context.Context, c tasks.Chunk, n int, log *slog.Logger) error {
	job, gen := c.Job, c.Gen
	allDone, err := w.store.FinishChunk(ctx, job, gen, c.Chunk, n)
	if err != nil {
		return err
	}
	if !allDone {
		return nil
	}
	enqueued, err := tasks.Enqueue(ctx, w.enq, tasks.NewFinalize(tasks.Finalize{Job: job, Gen: gen}))
	switch {
	case err != nil:
		return err
	case enqueued:
		log.Info("last chunk done; finalize enqueued", "gen", gen)
	default:
		log.Debug("finalize task already enqueued", "gen", gen)
	}
	return nil
}

// giveUp settles a chunk asynq gave up on: its pending numbers are recorded
// failed with cause, then the chunk is finished. It reports an error when
// that could not be done (the caller may try again later).
func (w *Worker) giveUp(ctx context.Context, c tasks.Chunk, cause error) error {
	log := w.log.With("job", c.Job, "chunk", c.Chunk)
	job, err := w.store.Job(ctx, c.Job)
	if errors.Is(err, jobstore.ErrNotFound) || (err == nil && (job.State.Finished() || job.Gen != c.Gen)) {
		log.Warn("chunk task given up; nothing to settle", "err", cause)
		return nil
	}
	if err != nil {
		return fmt.Errorf("chunk task given up and its job cannot be read: %w", err)
	}
	entries, err := w.store.Chunk(ctx, c.Job, c.Chunk)
	if err != nil {
		return fmt.Errorf("chunk task given up and its numbers cannot be read: %w", err)
	}
	outs, err := w.store.Outcomes(ctx, c.Job, c.Chunk)
	if err != nil {
		return fmt.Errorf("chunk task given up and its outcomes cannot be read: %w", err)
	}
	msg := "gave up: " + cause.Error()
	n := 0
	for _, r := range jobstore.Pending(len(entries), w.cfg.BatchSize, outs) {
		o := jobstore.Outcome{Lo: r.Lo, Hi: r.Hi, Status: jobstore.Failed, Message: msg, Attempts: r.Attempts}
		if err := w.record(ctx, c, o, jobstore.Counters{}); err != nil {
			return fmt.Errorf("chunk task given up and its numbers cannot be recorded: %w", err)
		}
		n += r.Hi - r.Lo
	}
	if n > 0 {
		log.Error("chunk task given up; its pending numbers recorded failed", "numbers", n, "err", cause)
		w.m.chunks.WithLabelValues(chunkGaveUp).Inc()
	}
	if err := w.finishChunk(ctx, c, len(entries), log); err != nil && !errors.Is(err, jobstore.ErrStale) {
		return fmt.Errorf("chunk given up and cannot be finished: %w", err)
	}
	return nil
}

// record records o for chunk c with counters cnt, adding the count of o's
// numbers to the counter of its status.
func (w *Worker) record(ctx context.Context, c tasks.Chunk, o jobstore.Outcome, cnt jobstore.Counters) error {
	n := int64(o.Hi - o.Lo)
	switch o.Status {
	case jobstore.Accepted:
		cnt.Accepted += n
	case jobstore.Rejected:
		cnt.Rejected += n
	case jobstore.Failed:
		cnt.Failed += n
	}
	if err := w.store.Record(ctx, c.Job, c.Gen, c.Chunk, o, cnt); err != nil {
		return err
	}
	if o.Final() {
		w.m.numbers.WithLabelValues(string(o.Status)).Add(float64(n))
	}
	return nil
}

// chunkRun is the state of one chunk being handled.
type chunkRun struct {
	w       *Worker
	c       tasks.Chunk
	numbers []string // E.164, one per chunk entry
	log     *slog.Logger
	abort   string // why the job was stopped; "" while it runs
	calls   int    // API calls sent
}

// settle settles the numbers of r: it sends them in one call (with retries)
// and records the outcome, bisecting r when the API refuses it as invalid.
// knownBad says r holds an invalid number for sure (its parent was refused
// and its left sibling accepted), so a range of several numbers is split
// without a call. It reports whether r's numbers were all accepted.
func (cr *chunkRun) settle(ctx context.Context, r jobstore.Range, knownBad bool) (bool, error) {
	if cr.abort == "" && cr.w.draining() {
		return false, ErrDraining
	}
	if knownBad && r.Hi-r.Lo > 1 && cr.abort == "" {
		if err := cr.record(ctx, jobstore.Outcome{Lo: r.Lo, Hi: r.Hi, Split: true, Attempts: r.Attempts}, jobstore.Counters{}); err != nil {
			return false, err
		}
		return cr.bisect(ctx, r, r.Attempts)
	}
	d, err := cr.call(ctx, r)
	if err != nil {
		return false, err
	}
	o := jobstore.Outcome{Lo: r.Lo, Hi: r.Hi, Attempts: d.attempts, CheckedAt: d.at}
	cnt := jobstore.Counters{}
	if d.sent {
		cnt.Requests = 1
	}
	switch {
	case d.notSent != "":
		o.Status, o.Message = jobstore.Failed, "not sent: job stopped: "+d.notSent
	case d.res.Class == capapi.Accepted:
		o.Status, o.Code, o.Message = jobstore.Accepted, d.res.Code, d.res.Message
	case d.res.Class == capapi.Invalid && r.Hi-r.Lo > 1:
		o.Split, o.CheckedAt = true, 0
		if err := cr.record(ctx, o, cnt); err != nil {
			return false, err
		}
		cr.log.Debug("batch refused as invalid: bisecting", "lo", r.Lo, "hi", r.Hi, "attempt", d.attempts, "code", d.res.Code)
		return cr.bisect(ctx, r, d.attempts)
	case d.res.Class == capapi.Invalid:
		o.Status, o.Code, o.Message = jobstore.Rejected, d.res.Code, d.res.Message
	case d.stopped:
		o.Status, o.Code, o.Message = jobstore.Failed, d.res.Code, "job stopped: "+cr.abort
	default: // transient errors until MaxAttempts
		o.Status, o.Code, o.Message = jobstore.Failed, d.res.Code, fmt.Sprintf("gave up after %d attempts: %s", d.tries, cause(d.res))
		cr.log.Warn("numbers failed after retries", "lo", r.Lo, "hi", r.Hi, "attempt", d.attempts, "cause", cause(d.res))
	}
	if err := cr.record(ctx, o, cnt); err != nil {
		return false, err
	}
	return o.Status == jobstore.Accepted, nil
}

// bisect settles the two halves of r, each starting with attempts: the left
// one first; the right one is known to hold an invalid number when the left
// one was all accepted.
func (cr *chunkRun) bisect(ctx context.Context, r jobstore.Range, attempts int) (bool, error) {
	mid := r.Mid()
	leftOK, err := cr.settle(ctx, jobstore.Range{Lo: r.Lo, Hi: mid, Attempts: attempts}, false)
	if err != nil {
		return false, err
	}
	_, err = cr.settle(ctx, jobstore.Range{Lo: mid, Hi: r.Hi, Attempts: attempts}, leftOK)
	return false, err
}

func (cr *chunkRun) record(ctx context.Context, o jobstore.Outcome, cnt jobstore.Counters) error {
	return cr.w.record(ctx, cr.c, o, cnt)
}

// decision is how a range's calls ended.
type decision struct {
	res      capapi.Result // the deciding answer
	attempts int           // calls spent on the numbers, inherited ones included
	tries    int           // calls of this range alone (429s excluded)
	sent     bool          // the deciding answer came from a call (not yet counted)
	at       int64         // time of the deciding answer, Unix ms
	notSent  string        // the job was stopped before the call: the reason
	stopped  bool          // this call stopped the job (401/403 or a fatal answer)
}

// call sends r's numbers until an answer decides them: accepted, invalid,
// the job stopped, or MaxAttempts transient failures. 429s pause the fleet
// and are repeated without counting as attempts. Each call waits on the
// fleet limiter, then checks that the job was not stopped meanwhile.
func (cr *chunkRun) call(ctx context.Context, r jobstore.Range) (decision, error) {
	w := cr.w
	d := decision{attempts: r.Attempts}
	numbers := cr.numbers[r.Lo:r.Hi]
	// Waits and backoffs end when Shutdown begins, and a little before
	// asynq's task deadline (the chunk is then handed back, not failed); a
	// call in flight does not.
	var waitCtx context.Context
	var cancel context.CancelFunc
	if dl, ok := ctx.Deadline(); ok {
		waitCtx, cancel = context.WithDeadline(ctx, dl.Add(-yieldMargin))
	} else {
		waitCtx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	defer context.AfterFunc(w.stopping, cancel)()
	for {
		if cr.abort == "" {
			cr.abort = w.stoppedJob(cr.c) // stopped by a call of this worker
		}
		if cr.abort != "" {
			d.notSent = cr.abort
			return d, nil
		}
		if err := cr.stopErr(waitCtx, nil); err != nil {
			return d, err
		}
		waited, err := w.lim.Wait(waitCtx)
		w.m.rateWait.Observe(waited.Seconds())
		if err != nil {
			return d, cr.stopErr(waitCtx, fmt.Errorf("waiting for the rate limit: %w", err))
		}
		// One HGET per call, after the wait: a job stopped by another
		// worker's 401 while this call waited costs no call.
		reason, err := w.store.Aborted(ctx, cr.c.Job)
		if err != nil {
			return d, fmt.Errorf("reading job %s: %w", cr.c.Job, err)
		}
		if reason != "" {
			cr.abort = reason
			continue
		}

		res := w.api.Check(ctx, numbers)
		cr.calls++
		w.m.apiRequests.WithLabelValues(res.Class.String()).Inc()
		w.m.apiDuration.Observe(res.Latency.Seconds())
		if ctx.Err() != nil {
			// Canceled in flight: the outcome is unknown, the chunk will be
			// resumed and this call repeated.
			return d, ctx.Err()
		}
		log := cr.log.With("lo", r.Lo, "hi", r.Hi, "attempt", d.attempts+1)
		log.Debug("api call", "result", res.Class.String(), "status", res.StatusCode, "latency", res.Latency)

		switch res.Class {
		case capapi.RateLimited:
			pause := res.RetryAfter
			if pause <= 0 {
				pause = w.cfg.PauseDefault
			}
			if pause > pauseMax {
				// A bogus Retry-After (a day, a far date) must not stop
				// every job of the fleet.
				log.Warn("429 Retry-After capped", "retry_after", pause, "cap", pauseMax)
				pause = pauseMax
			}
			w.m.rateLimited.Inc()
			log.Warn("API answered 429: pausing the fleet", "pause", pause)
			if err := w.store.Add(ctx, cr.c.Job, jobstore.Counters{Requests: 1, RateLimited: 1}); err != nil {
				return d, err
			}
			if err := w.lim.Pause(ctx, pause); err != nil {
				// Without the shared pause, at least this caller waits.
				log.Warn("could not pause the fleet; waiting here", "err", err)
				if err := sleep(waitCtx, pause); err != nil {
					return d, cr.stopErr(waitCtx, err)
				}
			}
			continue
		case capapi.Accepted, capapi.Invalid:
			d.attempts++
			d.tries++
			d.res, d.sent, d.at = res, true, time.Now().UnixMilli()
			return d, nil
		case capapi.Unauthorized, capapi.Fatal:
			d.attempts++
			d.tries++
			d.res, d.sent, d.at, d.stopped = res, true, time.Now().UnixMilli(), true
			if err := cr.stopJob(ctx, res); err != nil {
				return d, err
			}
			return d, nil
		}

		// Transient, or a class this worker does not know.
		d.attempts++
		d.tries++
		if d.tries >= w.cfg.MaxAttempts {
			d.res, d.sent, d.at = res, true, time.Now().UnixMilli()
			return d, nil
		}
		w.m.retries.Inc()
		if err := w.store.Add(ctx, cr.c.Job, jobstore.Counters{Requests: 1, Retries: 1}); err != nil {
			return d, err
		}
		back := w.backoff(d.tries)
		log.Info("transient API error: retrying", "cause", cause(res), "backoff", back)
		if err := sleep(waitCtx, back); err != nil {
			return d, cr.stopErr(waitCtx, err)
		}
	}
}

// stopErr says why a wait on waitCtx must end, if it must: ErrDraining when
// Shutdown began or the task's deadline is near (both hand the chunk back
// without using a retry), else err.
func (cr *chunkRun) stopErr(waitCtx context.Context, err error) error {
	switch {
	case cr.w.draining():
		return ErrDraining
	case errors.Is(waitCtx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: the task's time is nearly up", ErrDraining)
	}
	return err
}

// stopJob aborts the job after an answer that no retry can fix, with a
// reason that names the cause and what to fix (never the key).
func (cr *chunkRun) stopJob(ctx context.Context, res capapi.Result) error {
	reason := abortReason(res)
	if err := cr.w.store.Abort(ctx, cr.c.Job, reason); err != nil {
		return fmt.Errorf("stopping job %s: %w", cr.c.Job, err)
	}
	// The first reason recorded wins: use the one the job shows.
	if got, err := cr.w.store.Aborted(ctx, cr.c.Job); err == nil && got != "" {
		reason = got
	}
	cr.abort = reason
	cr.w.stopped.Store(stoppedKey(cr.c), reason)
	cr.log.Error("job stopped: no more API calls for it", "reason", reason)
	return nil
}

// abortReason says why res stops the job and what to fix.
func abortReason(res capapi.Result) string {
	answer := strings.TrimSpace(fmt.Sprintf("%d %s %s", res.StatusCode, res.Code, res.Message))
	answer = strings.Join(strings.Fields(answer), " ")
	switch {
	case res.Class == capapi.Unauthorized && res.StatusCode == 403:
		return fmt.Sprintf("the API refused the key (%s): check --api-key-file (or --api-key) and that the account may use the capability check", answer)
	case res.Class == capapi.Unauthorized:
		return fmt.Sprintf("the API refused the key (%s): check --api-key-file (or --api-key)", answer)
	case res.StatusCode == 404 || res.StatusCode == 405:
		return fmt.Sprintf("the API answered %d for the capability-check URL: check --api-url and --sid", res.StatusCode)
	case res.StatusCode == 0:
		return fmt.Sprintf("the API cannot be reached (%s): check --api-url", cause(res))
	default:
		return fmt.Sprintf("the API gave an answer no retry can fix (%s): check --api-url", cause(res))
	}
}

// cause is the text of a failed result for messages and logs.
func cause(res capapi.Result) string {
	if res.Err != nil {
		return res.Err.Error()
	}
	return res.String()
}

// backoff returns the wait before the call after the n-th transient failure
// of a range: full jitter over BackoffBase·2^(n-1), capped at BackoffMax.
func (w *Worker) backoff(n int) time.Duration {
	d := w.cfg.BackoffBase
	for i := 1; i < n && d < w.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, w.cfg.BackoffMax)
	return rand.N(d + 1)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
