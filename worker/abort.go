package worker

import (
	"context"
	"sync"
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

// abortRead is when a job's abort reason was last read (Unix ns, when the
// read began); 0: read it at the next permit. A read is noted when it ends,
// unless an announcement came meanwhile (announced counts them), so that
// "read lately" always means read after the last announcement.
type abortRead struct {
	at        atomic.Int64
	announced atomic.Int64
	reading   sync.Mutex // held by the call reading the reason
}

// jobAborted returns why c's job was aborted, "" while it runs, reading
// Redis at most every abortReadEvery unless an announcement came. Calls
// that find it to be read wait for one read (several lanes, or chunks, of
// the job take permits at once): a permit given after the announcement
// never goes by a read begun before it.
func (w *Worker) jobAborted(ctx context.Context, c tasks.Chunk) (string, error) {
	if r := w.abortSettled(ctx, c); r != "" {
		return r, nil
	}
	ar := w.abortReadOf(c.Job)
	if ar.fresh() {
		return "", nil
	}
	ar.reading.Lock()
	defer ar.reading.Unlock()
	if r := w.abortedJob(c); r != "" {
		return r, nil
	}
	if ar.fresh() {
		return "", nil // read by another call while this one waited
	}
	n, begin := ar.begin()
	reason, err := w.store.Aborted(ctx, c.Job)
	if err != nil {
		return "", err
	}
	if reason != "" {
		w.aborted.Store(abortKey(c), reason)
	}
	ar.read(n, begin)
	return reason, nil
}

// abortReadOf returns the note of job's abort reads, watching the
// announcements first (see jobAborted).
func (w *Worker) abortReadOf(job string) *abortRead {
	w.watchAbortsOnce()
	v, ok := w.abortReads.Load(job)
	if !ok {
		v, _ = w.abortReads.LoadOrStore(job, new(abortRead))
	}
	return v.(*abortRead)
}

// begin returns what read needs of a read of the reason that begins now.
func (ar *abortRead) begin() (announced, at int64) {
	return ar.announced.Load(), time.Now().UnixNano()
}

// read notes a read of the reason, begun at at after announced
// announcements, that found none (or noted the one it found).
func (ar *abortRead) read(announced, at int64) {
	// An announcement between the read and here makes the read stale: the
	// announcement's reset must win whichever of the two stores is last.
	ar.at.Store(at)
	if ar.announced.Load() != announced {
		ar.at.CompareAndSwap(at, 0)
	}
}

// fresh reports whether the reason was read lately, after the last
// announcement.
func (ar *abortRead) fresh() bool {
	last := ar.at.Load()
	return last != 0 && time.Now().UnixNano()-last < int64(abortReadEvery)
}

// announce makes the next permit read the reason again.
func (ar *abortRead) announce() {
	ar.announced.Add(1)
	ar.at.Store(0)
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
					v.(*abortRead).announce()
				}
				open = ok
			}
		}
		_ = sub.Close()
	}
}
