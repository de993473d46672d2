package worker

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
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
//
// It also keeps a worker from taking a task while it has no room for one
// (full): while a chunk it runs has ranges no lane has taken (its lanes
// take them as they free), or all its lanes are in use. A chunk taken then
// would wait behind the others, held where no idle replica can take it,
// and the fleet's limiter shares its permits by replica, not by chunk:
// such a worker ended a job alone with the chunks it had taken at the
// start (20 replicas at 1000/s: one held 16 chunks, the others 1 to 9), at
// its own calls in flight (~460 calls/s at 30 ms), for the last second of
// a 9 s job. Waiting, it lets a replica with room take the task, and takes
// the next one itself once its chunk's last range is taken or a lane ends
// (room).
//
// The handler of a task starts after the dequeue returns, so the next
// dequeue first waits for it to count itself (started). A hook sees every
// command of its client: each worker needs a client of its own (as each
// process has) for its own room to decide its own dequeues.
type idleWait struct {
	wake  chan struct{} // one pending hint is enough
	room  chan struct{} // a lane ended, a chunk's ranges are all taken
	full  func() bool   // no room for a task; nil: always room
	drain <-chan struct{}
	// unstarted counts the tasks dequeued whose handler has not started;
	// started is hinted when one does.
	unstarted atomic.Int64
	started   chan struct{}
}

// startWaitMax bounds the wait for a dequeued task's handler: asynq does
// not run one whose deadline passed meanwhile.
const startWaitMax = time.Second

func (h *idleWait) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *idleWait) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *idleWait) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isDequeue(cmd) {
			return next(ctx, cmd)
		}
		h.awaitRoom(ctx)
		err := next(ctx, cmd)
		if !errors.Is(err, redis.Nil) {
			h.dequeued(err)
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
		h.awaitRoom(ctx)
		err = next(ctx, cmd)
		h.dequeued(err)
		return err
	}
}

// dequeued counts a task the dequeue script returned (err nil) as not
// started yet.
func (h *idleWait) dequeued(err error) {
	if err == nil {
		h.unstarted.Add(1)
	}
}

// taskStarted tells the next dequeue that a task's handler has started,
// counted as open when it is a chunk's.
func (h *idleWait) taskStarted() {
	for {
		n := h.unstarted.Load()
		if n <= 0 {
			return // a task run without a dequeue (a test's ProcessTask)
		}
		if h.unstarted.CompareAndSwap(n, n-1) {
			break
		}
	}
	select {
	case h.started <- struct{}{}:
	default:
	}
}

// awaitRoom waits until the worker has room for a task, or is draining:
// a draining worker's hook lets every dequeue of its client through, so
// that it holds up no other worker sharing the client.
func (h *idleWait) awaitRoom(ctx context.Context) {
	if h.unstarted.Load() > 0 {
		t := time.NewTimer(startWaitMax)
		defer t.Stop()
		for h.unstarted.Load() > 0 {
			select {
			case <-h.started:
			case <-t.C:
				h.unstarted.Store(0) // never started: not counted
			case <-h.drain:
				return
			case <-ctx.Done():
				return
			}
		}
	}
	for h.full != nil && h.full() {
		select {
		case <-h.room:
		case <-h.drain:
			return
		case <-ctx.Done():
			return
		}
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

// freed tells a dequeue waiting for room that a lane ended.
func (h *idleWait) freed() {
	select {
	case h.room <- struct{}{}:
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
