package worker

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/sleep"
	"github.com/capcheck/capcheck/tasks"
)

// idleWaitMax is the longest an idle worker waits for an announcement
// (tasks.Announce) before it looks at the queue again: what a task enqueued
// without one (a retry coming due, a chunk recovered from a dead worker)
// may wait for an idle worker, instead of taskCheckInterval.
const idleWaitMax = time.Second

// dequeueKeys are the first keys of asynq's dequeue script for capcheck's
// queue: its pending list and its paused flag.
var dequeueKeys = [2]string{"asynq:{" + tasks.Queue + "}:pending", "asynq:{" + tasks.Queue + "}:paused"}

// idleWait turns asynq's polling of an empty queue into a wait: when the
// dequeue script finds nothing, the hook waits for an announcement (or
// idleWaitMax) and runs it again before asynq sees the answer. An idle
// worker then costs about one Redis command a second instead of twenty,
// and picks a task up as soon as it is announced rather than within a poll
// interval. It waits only while the worker is not draining.
type idleWait struct {
	wake  chan struct{} // one pending hint is enough
	drain <-chan struct{}
}

func (h *idleWait) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *idleWait) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *idleWait) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !errors.Is(err, redis.Nil) || !isDequeue(cmd) {
			return err
		}
		t := time.NewTimer(idleWaitMax)
		defer t.Stop()
		select {
		case <-h.wake:
		case <-t.C:
			// Nothing announced: asynq looks again after its short
			// sleep, and this waits again; a second look now would
			// only double the idle worker's commands.
			return err
		case <-h.drain:
			return err
		case <-ctx.Done():
			return err
		}
		return next(ctx, cmd)
	}
}

// isDequeue reports whether cmd runs asynq's dequeue script on capcheck's
// queue: EVALSHA or EVAL, the script, 4 keys, pending and paused first.
func isDequeue(cmd redis.Cmder) bool {
	a := cmd.Args()
	if len(a) < 5 || (cmd.Name() != "evalsha" && cmd.Name() != "eval") {
		return false
	}
	k1, _ := a[3].(string)
	k2, _ := a[4].(string)
	return k1 == dequeueKeys[0] && k2 == dequeueKeys[1]
}

// hint wakes the waiting dequeue, if any.
func (h *idleWait) hint() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// listenForTasks passes the announcements of enqueued tasks to h until ctx
// ends, subscribing again when the subscription breaks. Each
// (re)subscription is a hint too: what was announced meanwhile is lost.
func (w *Worker) listenForTasks(ctx context.Context, h *idleWait) {
	for ctx.Err() == nil {
		ps := w.store.Redis().Subscribe(ctx, tasks.WakeChannel)
		if _, err := ps.Receive(ctx); err != nil {
			_ = ps.Close()
			var ne net.Error
			if ctx.Err() == nil && !errors.As(err, &ne) {
				w.log.Debug("cannot listen for enqueued tasks now; looking every second", "err", err)
			}
			_ = sleep.For(ctx, idleWaitMax)
			continue
		}
		h.hint()
		msgs := ps.Channel()
		for open := true; open; {
			select {
			case <-ctx.Done():
				open = false
			case _, ok := <-msgs:
				h.hint()
				open = ok
			}
		}
		_ = ps.Close()
	}
}
