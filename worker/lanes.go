package worker

import (
	"context"
	"sync"

	"github.com/capcheck/capcheck/jobstore"
)

// A chunk run settles its ranges in lanes: a lane takes the next pending
// range no lane has taken and settles it (one call in flight at a time, the
// halves of a range refused as invalid before its next range, the left one
// first), records the outcome of each call, then takes another. A run has
// one lane, and more while the worker has fewer lanes than
// Config.CallsInFlight in all: when few chunks run (a job's first ones,
// before the fleet has picked up enough of them, and its last ones), each
// keeps several calls in flight, so that the fleet is not short of calls
// for its rate. A lane beyond a run's first ends after its range when the
// worker has more lanes than Config.CallsInFlight (more chunks came), so
// the worker's calls in flight stay at most Config.CallsInFlight, or one
// per chunk.
//
// Outcomes are ranges of the chunk's entries, so lanes record them in any
// order; a re-delivered chunk resumes from them (jobstore.Pending) whatever
// the lanes had in flight.

// laneSet is one round of a chunk run's lanes (sendPending); its fields
// are guarded by the run's mu.
type laneSet struct {
	todo []jobstore.Range // pending ranges no lane has taken, in order
	err  error            // the first lane's failure: no range is taken after it
	// waits is the parent of the lanes' limiter waits and backoffs: it
	// ends when a lane fails, so that the others stop without a new call
	// (calls in flight go on and are recorded).
	waits context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup // the lanes beyond the first
}

// sendPending settles the chunk's pending ranges in lanes, and returns the
// first lane's error.
func (cr *chunkRun) sendPending(ctx context.Context) error {
	outs, err := cr.w.store.Outcomes(ctx, cr.c.Job, cr.c.Chunk)
	if err != nil {
		return err
	}
	pending := jobstore.Pending(len(cr.numbers), cr.w.cfg.BatchSize, outs)
	if len(outs) > 0 {
		cr.log.Debug("resuming chunk", "recorded", len(outs), "pending_ranges", len(pending))
	}
	waits, stop := context.WithCancel(ctx)
	defer stop()
	ls := &laneSet{todo: pending, waits: waits, stop: stop}
	cr.mu.Lock()
	cr.lanes = ls
	cr.mu.Unlock()

	cr.w.lanes.Add(1)
	cr.lane(ctx, ls, false)
	cr.w.lanes.Add(-1)
	ls.wg.Wait()
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return ls.err
}

// lane settles ranges of ls until none is left or a lane failed; extra says
// it is not the run's first lane.
func (cr *chunkRun) lane(ctx context.Context, ls *laneSet, extra bool) {
	for {
		r, ok := cr.take(ls)
		if !ok {
			return
		}
		cr.spread(ctx, ls)
		if err := cr.settleRange(ctx, r); err != nil {
			cr.mu.Lock()
			if ls.err == nil {
				ls.err = err
			}
			cr.mu.Unlock()
			ls.stop()
			return
		}
		if extra && cr.w.lanes.Load() > int64(cr.w.cfg.CallsInFlight) {
			return
		}
	}
}

// take takes the next range of ls for a lane; false when there is none or
// a lane failed.
func (cr *chunkRun) take(ls *laneSet) (jobstore.Range, bool) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if ls.err != nil || len(ls.todo) == 0 {
		return jobstore.Range{}, false
	}
	r := ls.todo[0]
	ls.todo = ls.todo[1:]
	return r, true
}

// spread starts one more lane when ranges are left for it and the worker
// has room for it; that lane, once it has taken a range, does the same.
func (cr *chunkRun) spread(ctx context.Context, ls *laneSet) {
	cr.mu.Lock()
	left := ls.err == nil && len(ls.todo) > 0
	cr.mu.Unlock()
	if !left || !cr.w.addLane() {
		return
	}
	ls.wg.Add(1)
	go func() {
		defer ls.wg.Done()
		defer cr.w.lanes.Add(-1)
		cr.lane(ctx, ls, true)
	}()
}

// addLane counts one more lane beyond a run's first when the worker has
// fewer than Config.CallsInFlight lanes, and reports whether it did.
func (w *Worker) addLane() bool {
	limit := int64(w.cfg.CallsInFlight)
	for {
		n := w.lanes.Load()
		if n >= limit {
			return false
		}
		if w.lanes.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// settleRange settles r, and the halves of r when it is split, the left
// one first.
func (cr *chunkRun) settleRange(ctx context.Context, r jobstore.Range) error {
	stack := []*todo{{Range: r}}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		halves, err := cr.settle(ctx, t)
		if err != nil {
			return err
		}
		stack = append(stack, halves...)
	}
	return nil
}

// waitParent is the parent context of a lane's waits: they end with ctx,
// and when another lane of the run fails.
func (ls *laneSet) waitParent(ctx context.Context) context.Context {
	if ls == nil {
		return ctx
	}
	return ls.waits
}
