package worker

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/capcheck/capcheck/internal/sleep"
	"github.com/capcheck/capcheck/tasks"
)

// abortReadEvery bounds how often a worker reads a running job's abort
// reason from Redis. In between it relies on Abort's announcement
// (jobstore.WatchAborts), which makes the next permit of the job read it
// again at once: a job stopped by another replica's 401 costs no call
// waiting for a permit, without a Redis read per call.
const abortReadEvery = time.Second

// abortRead is when a job's abort reason was last read (Unix ns); 0: read it
// at the next permit.
type abortRead struct{ at atomic.Int64 }

// jobAborted returns why c's job was aborted, "" while it runs, reading
// Redis at most every abortReadEvery unless an announcement came.
func (w *Worker) jobAborted(ctx context.Context, c tasks.Chunk) (string, error) {
	if r := w.abortedJob(c); r != "" {
		return r, nil
	}
	w.watchAbortsOnce()
	v, _ := w.abortReads.LoadOrStore(c.Job, new(abortRead))
	ar := v.(*abortRead)
	now, last := time.Now().UnixNano(), ar.at.Load()
	if last != 0 && now-last < int64(abortReadEvery) || !ar.at.CompareAndSwap(last, now) {
		return "", nil // read lately, or being read by another call now
	}
	reason, err := w.store.Aborted(ctx, c.Job)
	if err != nil {
		ar.at.Store(0)
		return "", err
	}
	if reason != "" {
		w.aborted.Store(abortKey(c), reason)
	}
	return reason, nil
}

// watchAbortsOnce starts watchAborts with the first chunk of a worker not
// started (Start does it), unless the worker drains.
func (w *Worker) watchAbortsOnce() {
	w.abortWatch.Do(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.startWatchingAborts()
	})
}

// startWatchingAborts starts watchAborts unless the worker drains; the
// caller holds w.mu.
func (w *Worker) startWatchingAborts() {
	if w.draining() {
		return
	}
	w.bg.Add(1)
	go func() { defer w.bg.Done(); w.watchAborts(w.drain) }()
}

// watchAborts marks the jobs Abort announces to be read again, until ctx
// ends; it subscribes again when the subscription breaks.
func (w *Worker) watchAborts(ctx context.Context) {
	for ctx.Err() == nil {
		sub, err := w.store.WatchAborts(ctx)
		if err != nil {
			w.log.Debug("cannot watch for aborted jobs now; reading them every second", "err", err)
			_ = sleep.For(ctx, abortReadEvery)
			continue
		}
		for open := true; open; {
			select {
			case <-ctx.Done():
				open = false
			case id, ok := <-sub.C:
				if v, known := w.abortReads.Load(id); known {
					v.(*abortRead).at.Store(0)
				}
				open = ok
			}
		}
		_ = sub.Close()
	}
}
