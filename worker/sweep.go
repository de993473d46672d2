package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
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
	var errs []error
	for page := 1; page <= sweepPages; page++ {
		archived, err := insp.ListArchivedTasks(tasks.Queue, asynq.Page(page), asynq.PageSize(100))
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
			if err := w.sweepTask(ctx, insp, ti); err != nil {
				errs = append(errs, err) // the others are swept all the same
			}
		}
		if len(archived) < 100 {
			break
		}
	}
	return errors.Join(errs...)
}

// sweepPages bounds one sweep; the rest waits for the next.
const sweepPages = 10

// sweepTask settles or re-queues one archived chunk task, then deletes it.
func (w *Worker) sweepTask(ctx context.Context, insp *asynq.Inspector, ti *asynq.TaskInfo) error {
	c, err := tasks.ParseChunk(asynq.NewTask(ti.Type, ti.Payload))
	switch {
	case err != nil:
		w.log.Error("unreadable archived chunk task deleted", "task", ti.ID, "err", err)
	case strings.Contains(ti.LastErr, ErrHandedBack.Error()):
		// Handed back (drained, or yielded near its deadline) on its last retry:
		// asynq archives it all the same. It did not fail: queue it again,
		// with a fresh retry budget, once the archived one is gone.
		if err := insp.DeleteTask(tasks.Queue, ti.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return err
		}
		_, err := tasks.Enqueue(ctx, w.enq, tasks.NewChunk(c))
		return err
	default:
		if err := w.giveUp(ctx, c, fmt.Errorf("task archived by asynq: %s", ti.LastErr)); err != nil {
			return fmt.Errorf("job %s chunk %d: %w", c.Job, c.Chunk, err)
		}
	}
	if err := insp.DeleteTask(tasks.Queue, ti.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return err
	}
	return nil
}
