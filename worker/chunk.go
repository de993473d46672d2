package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
)

// unsettledRounds bounds the rounds of a chunk whose entries another live
// run of it left unsettled (see runChunk).
const unsettledRounds = 4

// processChunk handles a chunk task: it sends the chunk's pending ranges in
// lanes (lanes.go), records each outcome before its lane's next call, and
// finishes the chunk when every number is settled.
func (w *Worker) processChunk(ctx context.Context, t *asynq.Task) error {
	c, err := tasks.ParseChunk(t)
	if err != nil {
		w.log.Error("unreadable chunk task dropped", "err", err)
		w.m.chunks.WithLabelValues(chunkError).Inc()
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	log := w.log.With("job", c.Job, "chunk", c.Chunk)
	start := time.Now()
	read := w.startRead(ctx, c)
	hd, release, err := w.hold(ctx, c)
	if errors.Is(err, errHeldElsewhere) {
		// That run may yet end unsettled with nothing left to run it
		// again (its lease lost: asynq ignores what it returns, and this
		// is its task re-delivered). Keep the task until the chunk is
		// settled: it runs again when a hold could have lapsed, without
		// using a retry.
		log.Debug("chunk held by another run of it: tried again later", "retake", c.Retake)
		w.m.chunks.WithLabelValues(chunkStale).Inc()
		return err
	}
	if err != nil {
		w.m.chunks.WithLabelValues(chunkError).Inc()
		return fmt.Errorf("holding chunk %d of job %s: %w", c.Chunk, c.Job, err)
	}
	defer release()
	// The API's connections are warmed once the chunk is this run's: a
	// run that finds it held returns at once, and is tried again about
	// every second while another run holds it.
	warmed := w.startWarm(ctx, log)
	result, err := w.runChunk(ctx, c, hd, read, warmed, log)
	if err != nil && !errors.Is(err, ErrHandedBack) && w.draining() && ctx.Err() != nil {
		// Canceled by Shutdown: hand the chunk back like any drained one.
		err = fmt.Errorf("%w: %w", ErrDraining, err)
	}
	switch {
	case errors.Is(err, jobstore.ErrStale):
		// The job was re-driven (or finished) while this ran: what it
		// recorded since is refused, and the new generation's task goes on.
		log.Info("chunk task outdated by a re-drive of its job: stopped", "gen", c.Gen)
		result, err = chunkStale, nil
	case errors.Is(err, ErrHandedBack):
		result = chunkDraining
		log.Info("chunk handed back for another worker", "why", err)
	case err != nil:
		result = chunkError
	}
	w.m.chunkDur.Observe(time.Since(start).Seconds())
	w.m.chunks.WithLabelValues(result).Inc()
	return err
}

// chunkRead is what a chunk run reads before its hold is taken.
type chunkRead struct {
	job     *jobstore.Job
	entries []jobstore.Entry
	err     error
}

// startRead reads c's job record and entries (they do not change under a
// hold) while the caller takes the chunk's hold, and returns what waits for
// them. The record holds the abort reason: it counts as the job's read of
// it (jobAborted), which spares the first permit a round trip between the
// permit and the request.
func (w *Worker) startRead(ctx context.Context, c tasks.Chunk) (wait func() chunkRead) {
	done := make(chan chunkRead, 1)
	go func() {
		ar := w.abortReadOf(c.Job)
		n, begin := ar.begin()
		job, entries, err := w.store.HeadAndChunk(ctx, c.Job, c.Chunk)
		if job != nil && job.Gen == c.Gen && !job.State.Finished() {
			if job.Abort != "" {
				w.aborted.Store(abortKey(c), job.Abort)
			}
			ar.read(n, begin)
		}
		done <- chunkRead{job: job, entries: entries, err: err}
	}()
	return func() chunkRead { return <-done }
}

// runChunk does processChunk's work and returns the result for the
// capcheck_chunks_total metric; read waits for the job's record and the
// chunk's entries (startRead), warmed for the API client's connections
// (startWarm).
func (w *Worker) runChunk(ctx context.Context, c tasks.Chunk, hd *held, read func() chunkRead, warmed func(), log *slog.Logger) (string, error) {
	rd := read()
	job, entries, err := rd.job, rd.entries, rd.err
	if job == nil && errors.Is(err, jobstore.ErrNotFound) {
		log.Warn("chunk task of a job that does not exist: skipped")
		return chunkStale, nil
	}
	if job == nil {
		return chunkError, err
	}
	if job.State.Finished() || job.Gen != c.Gen {
		log.Debug("stale chunk task: skipped", "state", job.State, "task_gen", c.Gen, "job_gen", job.Gen)
		return chunkStale, nil
	}
	if err != nil {
		return chunkError, err
	}
	cr := w.newChunkRun(c, entries, job.Abort, log)
	cr.held = hd
	if cr.await, err = w.awaitRefOf(ctx, job, c.Chunk); err != nil {
		return chunkError, err
	}
	warmed()
	// Usually one round. Another live run of this chunk (asynq re-delivered
	// it) can leave entries of this run's ranges unsettled when its outcome
	// covered some of them first: FinishChunk says so, and they are sent.
	for round := 1; ; round++ {
		if err := cr.sendPending(ctx); err != nil {
			return chunkError, err
		}
		err := w.finishChunk(ctx, c, len(entries), log)
		if errors.Is(err, jobstore.ErrUnsettled) && round < unsettledRounds {
			continue
		}
		if err != nil {
			return chunkError, err
		}
		break
	}
	log.Debug("chunk done", "numbers", len(entries), "calls", cr.calls.Load())
	return chunkDone, nil
}

// finishChunk marks the chunk settled and, when it was the job's last,
// enqueues the finalize task. Both steps are idempotent, so a task that
// dies between them is simply run again.
func (w *Worker) finishChunk(ctx context.Context, c tasks.Chunk, n int, log *slog.Logger) error {
	allDone, err := w.store.FinishChunk(ctx, c.Job, c.Gen, c.Chunk, n)
	if err != nil {
		return err
	}
	enqueued, err := tasks.FinalizeWhenDone(ctx, w.enq, allDone, tasks.Finalize{Job: c.Job, Gen: c.Gen})
	switch {
	case err != nil:
		return err
	case enqueued:
		tasks.Announce(ctx, w.store.Redis())
		log.Info("last chunk done; finalize enqueued", "gen", c.Gen)
	case allDone:
		log.Debug("finalize task already enqueued", "gen", c.Gen)
	}
	return nil
}

// giveUp settles a chunk asynq gave up on: its pending numbers are recorded
// failed with cause, then the chunk is finished. It reports an error when
// that could not be done (the caller may try again later).
func (w *Worker) giveUp(ctx context.Context, c tasks.Chunk, cause error) error {
	log := w.log.With("job", c.Job, "chunk", c.Chunk)
	job, err := w.store.Head(ctx, c.Job)
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

// record records o for chunk c with the counters of its calls (the store
// counts the numbers o settles under their status).
func (w *Worker) record(ctx context.Context, c tasks.Chunk, o jobstore.Outcome, calls jobstore.Counters) error {
	if err := w.store.Record(ctx, c.Job, c.Gen, c.Chunk, o, calls); err != nil {
		return err
	}
	if o.Final() {
		w.m.numbers.WithLabelValues(string(o.Status)).Add(float64(o.Hi - o.Lo))
	}
	return nil
}
