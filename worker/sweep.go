package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/tasks"
)

// sweepInterval is how often a worker looks for archived chunk tasks.
const sweepInterval = time.Minute

// sweep settles chunk tasks that asynq archived without the worker's error
// handler: its recoverer archives a task whose lease expired on its last
// retry (a chunk that killed its worker again and again). Their pending
// numbers are recorded failed and the tasks deleted, so the job still
// finishes. Chunks the error handler settled already are only deleted.
// Several workers may sweep at once: recording is fenced (jobstore.Record).
func (w *Worker) sweep(ctx context.Context) {
	insp := asynq.NewInspectorFromRedisClient(w.store.Redis())
	for {
		// Jittered, so that replicas started together do not sweep together.
		d := sweepInterval/2 + rand.N(sweepInterval)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		if err := w.sweepOnce(ctx, insp); err != nil && ctx.Err() == nil {
			w.log.Warn("sweeping archived chunk tasks", "err", err)
		}
	}
}

func (w *Worker) sweepOnce(ctx context.Context, insp *asynq.Inspector) error {
	archived, err := insp.ListArchivedTasks(tasks.Queue, asynq.PageSize(100))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, ti := range archived {
		if ti.Type != tasks.TypeChunk {
			continue // a finalize task that gave up is for capcheck export
		}
		c, err := tasks.ParseChunk(asynq.NewTask(ti.Type, ti.Payload))
		if err == nil {
			err = w.giveUp(ctx, c, fmt.Errorf("task archived by asynq: %s", ti.LastErr))
		}
		if err != nil {
			return err // try again at the next sweep
		}
		if err := insp.DeleteTask(tasks.Queue, ti.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return err
		}
	}
	return nil
}
