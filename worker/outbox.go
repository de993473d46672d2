package worker

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/jobstore"
)

// A lane's outcomes are written in batches (group commit): a lane queues the
// outcome of its call in the worker's outbox and goes on to wait for its next
// permit. The outbox is written, in one pipeline, when it holds outboxBatch
// outcomes, or by the first lane that reaches the head of the limiter's
// queue, with those of the other lanes: in the limiter's own round trip for
// that lane's permit (ratelimit's TakeRiding), or, with the limiter on
// another client, before the lane waits for its slot (TakeAfter). A lane's
// next call waits until its outcomes are written, and a lane that ends
// writes them before it returns. So the rule stays: an outcome is recorded
// before its lane's next call, and a run's are all recorded when its lanes
// are done. A write carries about as many outcomes as lanes queued at the
// limiter, in a round trip the permit makes anyway; what a SIGKILL can leave
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
	batch := b.take()
	if len(batch) == 0 {
		return
	}
	// Not one lane's context: the batch holds other lanes' outcomes. It
	// ends when the worker's shutdown runs out of time, as handlers' do.
	w.written(batch, w.store.RecordAll(w.halt, records(batch)))
}

// take empties the outbox for a write; the caller holds b.writing.
func (b *outbox) take() []*queued {
	b.mu.Lock()
	defer b.mu.Unlock()
	batch := b.queue
	b.queue = nil
	for _, q := range batch {
		q.taken = true
	}
	return batch
}

func records(batch []*queued) []jobstore.Record {
	recs := make([]jobstore.Record, len(batch))
	for i, q := range batch {
		recs[i] = q.rec
	}
	return recs
}

// written settles a write of batch whose errors are errs (nil: all
// written): its lanes see them at their flush.
func (w *Worker) written(batch []*queued, errs []error) {
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

// outboxRider writes the outbox in the round trip the limiter makes for a
// lane's permit (ratelimit.Rider), when it holds any outcome (the lane's,
// or those of other lanes): the write then costs no round trip of its own,
// and it is done before the permit is handed to the lane, as the rule
// wants. The limiter must share the store's Redis client.
type outboxRider struct{ lo *laneOutbox }

func (r outboxRider) Queue(_ context.Context, pipe redis.Pipeliner) (settle func() error) {
	w := r.lo.w
	b := &w.outbox
	b.mu.Lock()
	empty := len(b.queue) == 0
	b.mu.Unlock()
	if empty {
		return nil // the lane's were written (or are being written)
	}
	b.writing.Lock()
	batch := b.take()
	if len(batch) == 0 {
		b.writing.Unlock()
		return nil
	}
	done := w.store.QueueRecords(w.halt, pipe, records(batch))
	return func() error {
		defer b.writing.Unlock()
		w.written(batch, done())
		return nil // each lane reads its own errors at its flush
	}
}

// Alone writes the lane's outcomes when the permit needed no round trip
// (and, with TakeAfter, before the lane waits for its slot).
func (r outboxRider) Alone(context.Context) error {
	if err := r.lo.flush(); err != nil {
		return outboxError{err}
	}
	return nil
}
