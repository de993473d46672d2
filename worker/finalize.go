package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/outfiles"
	"github.com/capcheck/capcheck/tasks"
)

// processFinalize handles a finalize task: it writes the job's output files
// once every chunk is settled, then moves the job to its final state.
// BeginFinalize makes it idempotent: a stale or repeated task does nothing.
func (w *Worker) processFinalize(ctx context.Context, t *asynq.Task) error {
	f, err := tasks.ParseFinalize(t)
	if err != nil {
		w.log.Error("unreadable finalize task dropped", "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	log := w.log.With("job", f.Job, "gen", f.Gen)
	if hold, err := w.holdForCallbacks(ctx, f, log); err != nil || hold {
		return err
	}
	ok, err := w.store.BeginFinalize(ctx, f.Job, f.Gen)
	if err != nil {
		return err
	}
	if !ok {
		log.Debug("stale finalize task: skipped")
		return nil
	}
	if w.cfg.NoFiles {
		st, err := w.store.EndFinalize(ctx, f.Job, f.Gen)
		if err != nil {
			return err
		}
		w.expire(ctx, f.Job, log)
		w.countMemory(ctx, f.Job)
		log.Info("job finished; its files are written by whoever waits for it (wait, run, export)", "state", st)
		return nil
	}
	start := time.Now()
	sum, err := outfiles.Write(ctx, w.store, f.Job, w.cfg.OutDir)
	if err != nil {
		// The job stays Finalizing; asynq retries the task, and
		// BeginFinalize lets the retry in.
		return fmt.Errorf("writing the output files of job %s: %w", f.Job, err)
	}
	st, err := w.store.EndFinalize(ctx, f.Job, f.Gen)
	if err != nil {
		return err
	}
	w.expire(ctx, f.Job, log)
	w.countMemory(ctx, f.Job)
	log.Info("job finished",
		"state", st,
		"dir", outfiles.Dir(w.cfg.OutDir, f.Job),
		"accepted", sum.Results["accepted"],
		"rejected", sum.Results["rejected"],
		"failed", sum.Results["failed"],
		"cached", sum.Results["cached"],
		"remembered_rejections", sum.RememberedRejections,
		"changes", sum.Changes,
		"requests", sum.Requests,
		"rate_limited", sum.RateLimited,
		"retries", sum.Retries,
		"check_seconds", round(sum.CheckSeconds),
		"total_seconds", round(sum.TotalSeconds),
		"requests_per_second", round(sum.RequestsPerSecond),
		"write_seconds", round(time.Since(start).Seconds()),
		"stopped_because", sum.Reason,
	)
	return nil
}

// expire sets the retention of a finished job's records. Not worth a retry:
// the job is finished.
func (w *Worker) expire(ctx context.Context, job string, log *slog.Logger) {
	if w.cfg.Retention <= 0 {
		return
	}
	if err := w.store.Expire(ctx, job, w.cfg.Retention); err != nil {
		log.Warn("could not set the expiry of the job's records; they stay in Redis", "err", err)
	}
}

// Results of capcheck_memory_lookups_total.
const (
	memoryHit  = "hit"
	memoryMiss = "miss"
)

// countMemory counts, once the job is finished (once per generation: a
// retried finalize finds it finished and stops before), what the memory
// did for its numbers: enqueue looked each valid number up, and did not
// send the cached ones.
func (w *Worker) countMemory(ctx context.Context, job string) {
	j, err := w.store.Job(ctx, job)
	if err != nil {
		return // a metric is not worth a retry
	}
	w.m.memory.WithLabelValues(memoryHit).Add(float64(j.Cached))
	w.m.memory.WithLabelValues(memoryMiss).Add(float64(j.Sent()))
}

func round(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
