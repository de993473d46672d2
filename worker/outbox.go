package worker

import (
	"sync"

	"github.com/capcheck/capcheck/jobstore"
)

// A lane's outcomes are written in batches (group commit): a lane queues the
// outcome of its call in the worker's outbox and goes on to wait for its next
// permit; the outbox is written, in one pipeline, by the first lane that
// reaches the head of the limiter's queue with an outcome of its own still
// queued (ratelimit's TakeAfter), which writes those of the other lanes with
// it. A lane's next call waits until its outcomes are written, and a lane
// that ends writes them before it returns, so the rule stays: an outcome is
// recorded before its lane's next call, and a run's are all recorded when
// its lanes are done. At a worker's rate a lane calls once for every lane
// queued at the limiter, so a write carries about that many outcomes, one
// round trip for them all instead of one each; what a SIGKILL can leave
// unrecorded stays one call per lane (in flight, or answered and queued).

// outbox holds a worker's outcomes not written yet.
type outbox struct {
	mu    sync.Mutex
	queue []*queued
	// writing serializes the writes, so that the outcomes of a lane land in
	// the order it queued them.
	writing sync.Mutex
}

// queued is one outcome in the outbox.
type queued struct {
	rec   jobstore.Record
	taken bool          // in a write (guarded by outbox.mu)
	done  chan struct{} // closed once written (or failed)
	err   error         // set before done is closed
}

// laneOutbox is what one lane has queued and not yet seen written.
type laneOutbox struct {
	w    *Worker
	mine []*queued
}

// outboxBatch is how many queued outcomes are written at once, as soon as
// the outbox holds them, without waiting for a lane to come next in the
// limiter's queue: it bounds what a SIGKILL leaves answered and unrecorded
// (sent again by the takeover) near what one write per call left in
// flight, while a write still carries several.
const outboxBatch = 4

// add queues r for the lane; when the outbox holds outboxBatch outcomes, it
// is written in the background (the lane waits for its own at its next
// call, and is not kept from its permit meanwhile).
func (lo *laneOutbox) add(r jobstore.Record) {
	q := &queued{rec: r, done: make(chan struct{})}
	b := &lo.w.outbox
	b.mu.Lock()
	b.queue = append(b.queue, q)
	full := len(b.queue) >= outboxBatch
	b.mu.Unlock()
	lo.mine = append(lo.mine, q)
	if full {
		go lo.w.writeOutbox()
	}
}

// waiting reports whether the lane has outcomes that no write has taken
// yet.
func (lo *laneOutbox) waiting() bool {
	b := &lo.w.outbox
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range lo.mine {
		if !q.taken {
			return true
		}
	}
	return false
}

// flush writes the lane's outcomes, and every other one queued, unless
// they are written already, and returns the first error of the lane's.
func (lo *laneOutbox) flush() error {
	if lo == nil || len(lo.mine) == 0 {
		return nil
	}
	if lo.waiting() {
		lo.w.writeOutbox()
	}
	var first error
	for _, q := range lo.mine {
		<-q.done
		if first == nil {
			first = q.err
		}
	}
	lo.mine = lo.mine[:0]
	return first
}

// writeOutbox writes what the outbox holds, in one pipeline, once the
// write before it (which may hold the caller's outcomes) has landed.
func (w *Worker) writeOutbox() {
	b := &w.outbox
	b.writing.Lock()
	defer b.writing.Unlock()
	b.mu.Lock()
	batch := b.queue
	b.queue = nil
	for _, q := range batch {
		q.taken = true
	}
	b.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	recs := make([]jobstore.Record, len(batch))
	for i, q := range batch {
		recs[i] = q.rec
	}
	// Not one lane's context: the batch holds other lanes' outcomes. It
	// ends when the worker's shutdown runs out of time, as handlers' do.
	errs := w.store.RecordAll(w.halt, recs)
	for i, q := range batch {
		if errs != nil {
			q.err = errs[i]
		}
		if o := q.rec.Outcome; q.err == nil && o.Final() {
			w.m.numbers.WithLabelValues(string(o.Status)).Add(float64(o.Hi - o.Lo))
		}
		close(q.done)
	}
}
