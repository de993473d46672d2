package worker

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
)

// SweepOnce runs one sweep of archived chunk tasks, for tests.
func (w *Worker) SweepOnce(ctx context.Context) error {
	return w.sweepOnce(ctx, asynq.NewInspectorFromRedisClient(w.store.Redis()))
}

// SweepMemoryOnce runs the capability memory's sweep as of now when it is
// due, for tests.
func (w *Worker) SweepMemoryOnce(ctx context.Context, now time.Time) (bool, error) {
	return w.sweepMemoryOnce(ctx, now)
}

// AbortAnnounced reports whether an announcement of job's abort reached w, so
// that its next permit reads the reason again, for tests.
func (w *Worker) AbortAnnounced(job string) bool {
	v, ok := w.abortReads.Load(job)
	return ok && v.(*abortRead).at.Load() == 0
}

// StarveHolds stops the worker's ticks that renew its holds and moves its
// clock of the holds d ahead, as a process starved for d sees it, for tests.
func (w *Worker) StarveHolds(d time.Duration) {
	w.holds.starved.Store(true)
	w.holds.skew.Add(int64(d))
}

// CheckAwaiting runs one look of the watch of jobs awaiting callbacks, for
// tests; it reports whether any job is listed.
func (w *Worker) CheckAwaiting(ctx context.Context) (bool, error) {
	return w.checkAwaiting(ctx)
}

// StallBeforeHold makes each chunk run of w call f after asynq handed its
// task over and before it holds the chunk, for tests; set before Start.
func (w *Worker) StallBeforeHold(f func(context.Context)) { w.holds.stall = f }
