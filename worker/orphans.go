package worker

import (
	"context"
	"time"

	"github.com/capcheck/capcheck/tasks"
)

// A worker killed between asynq's hand-over of a chunk task and its hold
// (TakeRun, a Redis round trip later) leaves a task that asynq holds and no
// hold names: the holds' takeover cannot see it, and asynq gives it back
// only 60 - 120 s later. So the hold tick also looks, at most every
// orphanEvery, at asynq's leases, and takes over a chunk task whose chunk
// it saw held by no run on two looks orphanAfter apart, its lease not
// extended meanwhile (a live worker's heartbeat extends it every 5 s). A
// live run takes its hold milliseconds after the hand-over and drops it
// milliseconds before asynq's ack, so only a dead worker's task, or one
// starved for a second, is taken over; the holds keep the two runs from
// sending at once (the later one to hold finds the chunk held, or
// settled). The takeover is the holds' own (Retake+1, its ID shared by the
// fleet: one enqueue), made only while the chunk is open, and each worker
// looks at a lease once it saw the chunk held or took it over.
const (
	orphanEvery = time.Second
	orphanAfter = time.Second
	// leasesMax bounds the leases one look reads: the fleet's chunk
	// slots, with room.
	leasesMax = 8192
)

// orphans are the leases of chunk tasks a worker looked at; only its hold
// tick uses them.
type orphans struct {
	last  time.Time
	looks uint64
	seen  map[string]*orphanSeen // task ID →
}

type orphanSeen struct {
	until int64     // the lease's expiry as seen
	first time.Time // when first seen with no hold of the chunk
	look  uint64    // the last look that saw the lease
	done  bool      // the chunk was held, or is taken over or closed
}

// adoptOrphans takes over the chunk tasks of workers that died before
// holding their chunk, once orphanEvery has passed since its last look.
func (w *Worker) adoptOrphans(ctx context.Context) {
	o := &w.orphans
	now := time.Now()
	if now.Sub(o.last) < orphanEvery {
		return
	}
	o.last = now
	leases, err := tasks.Leased(ctx, w.store.Redis(), now, leasesMax)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not look for chunk tasks of workers gone", "err", err)
		}
		return
	}
	if len(leases) == 0 {
		clear(o.seen)
		return
	}
	if o.seen == nil {
		o.seen = make(map[string]*orphanSeen)
	}
	o.looks++
	mine := w.heldChunks()
	type look struct {
		c tasks.Chunk
		e *orphanSeen
	}
	var looks []look
	var names []string
	for _, l := range leases {
		c, ok := tasks.ChunkOfID(l.ID)
		if !ok {
			continue // a finalize task, or not capcheck's
		}
		e := o.seen[l.ID]
		if e == nil || e.until != l.Until {
			// New, or extended (its worker lives) or handed out again.
			e = &orphanSeen{until: l.Until}
			o.seen[l.ID] = e
		}
		e.look = o.looks
		name := chunkName(c)
		if e.done || mine[name] {
			e.done = true
			continue
		}
		looks = append(looks, look{c, e})
		names = append(names, name)
	}
	for id, e := range o.seen {
		if e.look != o.looks {
			delete(o.seen, id) // done, or its lease expired
		}
	}
	if len(names) == 0 {
		return
	}
	held, err := w.store.HeldChunks(ctx, names...)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not look for chunk tasks of workers gone", "err", err)
		}
		return
	}
	n := 0
	for i, lk := range looks {
		switch {
		case held[i]:
			// Its run, or another run of the chunk, settles it; were that
			// run to die, its hold lapses and is taken over.
			lk.e.done = true
		case lk.e.first.IsZero():
			lk.e.first = now
		case now.Sub(lk.e.first) >= orphanAfter:
			took, err := w.adopt(ctx, lk.c)
			if err != nil {
				if ctx.Err() == nil {
					w.log.Warn("could not take over the chunk task of a worker gone", "job", lk.c.Job, "chunk", lk.c.Chunk, "err", err)
				}
				continue // looked at again
			}
			lk.e.done = true
			if took {
				n++
			}
		}
	}
	if n > 0 {
		tasks.Announce(ctx, w.store.Redis())
	}
}

// adopt takes over chunk task c, whose worker died before holding the
// chunk, unless the chunk is settled or outdated: it reports whether it
// enqueued the takeover.
func (w *Worker) adopt(ctx context.Context, c tasks.Chunk) (bool, error) {
	open, err := w.store.ChunkOpen(ctx, c.Job, c.Gen, c.Chunk)
	if err != nil || !open {
		return false, err
	}
	return w.retake(ctx, c, "chunk task of a worker gone before it held the chunk taken over")
}

// heldChunks are the chunks this worker's runs hold.
func (w *Worker) heldChunks() map[string]bool {
	w.holds.mu.Lock()
	defer w.holds.mu.Unlock()
	m := make(map[string]bool, len(w.holds.runs))
	for r := range w.holds.runs {
		m[r.Chunk] = true
	}
	return m
}
