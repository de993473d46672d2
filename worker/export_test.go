package worker

import (
	"context"

	"github.com/hibiken/asynq"
)

// SweepOnce runs one sweep of archived chunk tasks, for tests.
func (w *Worker) SweepOnce(ctx context.Context) error {
	return w.sweepOnce(ctx, asynq.NewInspectorFromRedisClient(w.store.Redis()))
}
