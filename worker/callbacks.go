package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
)

// awaitWatchInterval is how often a worker looks at the jobs awaiting
// callbacks while some are listed: a job leaves the wait within about this
// long (plus a finalize task's pick-up) of its last callback. With none
// listed it looks every awaitIdleInterval, or at once when one of its own
// finalize tasks lists a job: the worker that lists a job watches it
// closely from the start, the others within awaitIdleInterval.
const (
	awaitWatchInterval = 250 * time.Millisecond
	awaitIdleInterval  = 2 * time.Second
)

// awaitRef is what a chunk run of a job waiting for callbacks needs to
// register its accepted numbers.
type awaitRef struct {
	ordinal uint32
	since   time.Time // a record at least this new answers the job
	base    uint32    // index in the job of the chunk's first entry
}

// awaitRefOf returns the registration data of job's chunk, nil when the job
// waits for no callbacks.
func (w *Worker) awaitRefOf(ctx context.Context, job *jobstore.Job, chunk int) (*awaitRef, error) {
	if job.CallbackWait <= 0 {
		return nil, nil
	}
	ord, err := w.caps.RegisterJob(ctx, job.ID)
	if err != nil {
		return nil, err
	}
	return &awaitRef{ordinal: ord, since: job.CreatedAt, base: uint32(chunk * job.ChunkSize)}, nil
}

// registerAwaited registers the numbers of an accepted range as awaited,
// before the outcome is recorded: a run killed in between sends them again
// and registers them again, which is harmless.
func (cr *chunkRun) registerAwaited(ctx context.Context, r jobstore.Range) error {
	a := cr.await
	if a == nil {
		return nil
	}
	items := make([]capstore.Awaited, 0, r.Hi-r.Lo)
	for k := r.Lo; k < r.Hi; k++ {
		n, err := strconv.ParseUint(cr.numbers[k][1:], 10, 64)
		if err != nil {
			return fmt.Errorf("chunk entry %d: number %q: %w", k, cr.numbers[k], err)
		}
		items = append(items, capstore.Awaited{Number: n, Index: a.base + uint32(k)})
	}
	return cr.w.caps.Await(ctx, cr.c.Job, a.ordinal, items, a.since)
}

// holdForCallbacks decides what a finalize task of a job that waits for
// callbacks does: it reports true when the job is to keep waiting (the
// task has nothing to do; the watch enqueues another when the wait ends).
// A job fresh out of its last chunk enters AwaitingCallbacks here.
func (w *Worker) holdForCallbacks(ctx context.Context, f tasks.Finalize, log *slog.Logger) (bool, error) {
	j, err := w.store.Job(ctx, f.Job)
	if errors.Is(err, jobstore.ErrNotFound) {
		return false, nil // BeginFinalize says the rest
	}
	if err != nil || j.CallbackWait <= 0 || j.Gen != f.Gen {
		return false, err
	}
	switch j.State {
	case jobstore.Enqueued:
		if j.Abort != "" {
			return false, nil // stopped: nothing was accepted since, no wait
		}
		ok, err := w.store.BeginAwait(ctx, f.Job, f.Gen, j.CallbackWait)
		if err != nil || !ok {
			return false, err
		}
		log.Info("every chunk settled; awaiting callbacks", "accepted", j.Accepted, "wait", j.CallbackWait)
		w.wakeAwaitWatch()
		j, err = w.store.Job(ctx, f.Job)
		if err != nil {
			return false, err
		}
	case jobstore.AwaitingCallbacks:
	default:
		return false, nil
	}
	done, err := w.callbacksDone(ctx, j)
	return !done, err
}

// callbacksDone reports whether a job awaiting callbacks has them all, or
// its wait is over.
func (w *Worker) callbacksDone(ctx context.Context, j *jobstore.Job) (bool, error) {
	if !j.AwaitUntil.IsZero() && !time.Now().Before(j.AwaitUntil) {
		return true, nil
	}
	jc, err := w.caps.JobCounts(ctx, j.ID)
	if err != nil {
		return false, err
	}
	return jc.Received >= j.Accepted, nil
}

// watchAwaiting enqueues the finalize task of each job awaiting callbacks
// once it has them all or its wait is over. Every worker watches; the
// finalize task's ID makes the extra ones no-ops.
func (w *Worker) watchAwaiting(ctx context.Context) {
	after(ctx, awaitIdleInterval, w.awaitWake, func() time.Duration {
		listed, err := w.checkAwaiting(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("checking the jobs awaiting callbacks failed; trying again", "err", err)
		}
		if listed || err != nil {
			return awaitWatchInterval
		}
		return awaitIdleInterval
	})
}

// wakeAwaitWatch makes watchAwaiting look now, and closely until the jobs
// listed are gone.
func (w *Worker) wakeAwaitWatch() {
	select {
	case w.awaitWake <- struct{}{}:
	default:
	}
}

// checkAwaiting enqueues the finalize tasks due; it reports whether any job
// is listed as awaiting callbacks.
func (w *Worker) checkAwaiting(ctx context.Context) (bool, error) {
	ids, err := w.store.AwaitingJobs(ctx, 100)
	if err != nil {
		return false, err
	}
	return len(ids) > 0, w.finalizeAwaited(ctx, ids)
}

// finalizeAwaited enqueues the finalize task of each job of ids whose wait
// is over, and unlists those no longer awaiting.
func (w *Worker) finalizeAwaited(ctx context.Context, ids []string) error {
	for _, id := range ids {
		j, err := w.store.Job(ctx, id)
		if errors.Is(err, jobstore.ErrNotFound) {
			if err := w.store.Unlist(ctx, id); err != nil {
				return err
			}
			continue // deleted: nothing to finalize (j is nil)
		}
		if err != nil {
			return err
		}
		switch j.State {
		case jobstore.AwaitingCallbacks:
			done, err := w.callbacksDone(ctx, j)
			if err != nil {
				return err
			}
			if !done {
				continue // a job listed after it may have all its answers
			}
			if _, err := tasks.Enqueue(ctx, w.enq, tasks.NewFinalize(tasks.Finalize{Job: id, Gen: j.Gen})); err != nil {
				return err
			}
		case jobstore.Enqueued:
			// Listed by a BeginAwait that did not finish, or waiting for
			// its last chunk: the finalize task moves it on.
			if j.ChunksDone < j.Chunks || j.Chunks == 0 {
				continue
			}
			if _, err := tasks.Enqueue(ctx, w.enq, tasks.NewFinalize(tasks.Finalize{Job: id, Gen: j.Gen})); err != nil {
				return err
			}
		default:
			if err := w.store.Unlist(ctx, id); err != nil {
				return err
			}
		}
	}
	return nil
}
