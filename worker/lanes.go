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
// one lane, and more while the worker has fewer lanes than Config.Concurrency
// in all: when few chunks run (a job's first ones, before the fleet has
// picked up enough of them, and its last ones), each keeps several calls in
// flight, so that the fleet is not short of calls for its rate.
//
// Beyond that, up to Config.CallsInFlight, a run gets one more lane only
// while some lane of the worker is in a call and every other one is (none
// waits for a permit, or is on its way to one): the limiter then has no call for its
// next slots, and the calls' latency, not the rate, bounds the worker (at
// 30 ms a call, 16 lanes send at most ~530 calls/s). That is a replica
// alone in the fleet, and a replica that ends a job alone: asynq lets a
// worker take up to Concurrency chunks, and the fleet's limiter shares its
// slots by replica, so one replica often holds the last chunks of a job
// (20 replicas at 1000/s: its last 0.3 to 1.2 s). A replica whose lanes
// wait for permits (the fleet's rate, shared, bounds it) adds none: at the
// start of a job, with every replica busy, the fleet's lanes stay at
// Concurrency each.
//
// A lane beyond a run's first ends after its range when the worker has more
// lanes than Config.CallsInFlight, or more than Config.Concurrency while
// laneSurplus of them (or Concurrency, if fewer) wait for permits (more chunks came, or the fleet's
// other replicas took their share of the slots). A lane that runs out of
// ranges gives its place to the run of the worker with the most ranges
// left (spreadOther).
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
	// ctx is the lanes' context; closed says the run's first lane has
	// returned: no lane is started after it (another run's lane may try,
	// see spreadOther).
	ctx    context.Context
	closed bool
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
	ls := &laneSet{todo: pending, waits: waits, stop: stop, ctx: ctx}
	cr.mu.Lock()
	cr.lanes = ls
	cr.mu.Unlock()
	cr.w.runs.add(ls, cr)

	cr.w.lanes.Add(1)
	dry := cr.lane(ctx, ls, false)
	cr.w.runs.remove(ls)
	cr.mu.Lock()
	ls.closed = true
	cr.mu.Unlock()
	cr.w.lanes.Add(-1)
	if dry {
		cr.w.spreadOther()
	}
	ls.wg.Wait()
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return ls.err
}

// lane settles ranges of ls until none is left or a lane failed; extra says
// it is not the run's first lane. It reports whether it ended because no
// range was left: its place may go to another run's ranges (spreadOther).
func (cr *chunkRun) lane(ctx context.Context, ls *laneSet, extra bool) (dry bool) {
	lo := &laneOutbox{w: cr.w}
	for {
		r, ok := cr.take(ls)
		if !ok {
			// What the lane recorded is written before it ends.
			if err := lo.flush(); err != nil {
				cr.fail(ls, err)
				return false
			}
			return true
		}
		cr.spread(ctx, ls)
		if err := cr.settleRange(ctx, lo, r); err != nil {
			cr.fail(ls, err)
			if err := lo.flush(); err != nil {
				cr.fail(ls, err)
			}
			return false
		}
		if extra && cr.w.laneSpare() {
			if err := lo.flush(); err != nil {
				cr.fail(ls, err)
			}
			return false
		}
	}
}

// fail notes err as the lanes' failure, unless one is noted already, and
// stops the other lanes' waits.
func (cr *chunkRun) fail(ls *laneSet, err error) {
	cr.mu.Lock()
	if ls.err == nil {
		ls.err = err
	}
	cr.mu.Unlock()
	ls.stop()
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
	start := ls.err == nil && len(ls.todo) > 0 && !ls.closed && cr.w.addLane()
	if start {
		ls.wg.Add(1) // before the first lane's Wait: it has not closed ls
	}
	cr.mu.Unlock()
	if !start {
		return
	}
	go func() {
		defer ls.wg.Done()
		dry := cr.lane(ctx, ls, true)
		cr.w.lanes.Add(-1)
		if dry {
			cr.w.spreadOther()
		}
	}()
}

// runSet holds a worker's chunk runs whose lanes are settling ranges.
type runSet struct {
	mu sync.Mutex
	m  map[*laneSet]*chunkRun
}

func (rs *runSet) add(ls *laneSet, cr *chunkRun) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m == nil {
		rs.m = make(map[*laneSet]*chunkRun)
	}
	rs.m[ls] = cr
}

func (rs *runSet) remove(ls *laneSet) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.m, ls)
}

// spreadOther gives the place of a lane that ran out of ranges to the run
// of the worker with the most ranges no lane has taken: without it, a run
// whose lanes were held back while another's were many (the worker's
// lanes waited for permits) gets more only as its own lanes take their
// next ranges, one call later, and a replica ending a job alone sends
// below the rate between its chunks' ends.
func (w *Worker) spreadOther() {
	var (
		best *laneSet
		cr   *chunkRun
		most int
	)
	w.runs.mu.Lock()
	for ls, c := range w.runs.m {
		c.mu.Lock()
		n := len(ls.todo)
		if ls.err != nil || ls.closed {
			n = 0
		}
		c.mu.Unlock()
		if n > most {
			best, cr, most = ls, c, n
		}
	}
	w.runs.mu.Unlock()
	if best != nil {
		cr.spread(best.ctx, best)
	}
}

// laneSurplus is how many lanes waiting for permits (fewer when
// Config.Concurrency is) make a lane beyond Config.Concurrency spare: the
// limiter has calls for its next slots without it. Several, so that lanes
// are not ended and added again as the queue at the limiter comes and goes;
// lanes that are only slow to record (a busy host) are not spare.
const laneSurplus = 4

// addLane counts one more lane beyond a run's first, and reports whether it
// did: when the worker has fewer lanes than Config.Concurrency (and
// Config.CallsInFlight), or fewer than Config.CallsInFlight and some lane
// is in a call and every other one is.
func (w *Worker) addLane() bool {
	base, limit := w.laneBase(), int64(w.cfg.CallsInFlight)
	for {
		n := w.lanes.Load()
		// A worker none of whose lanes is in a call is not held back by its
		// calls' latency.
		if calling := w.calling.Load(); n >= limit || (n >= base && (calling == 0 || n-calling > 1)) {
			return false
		}
		if w.lanes.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// laneSpare reports whether a lane beyond a run's first should end after
// its range (see addLane).
func (w *Worker) laneSpare() bool {
	n := w.lanes.Load()
	base := w.laneBase()
	return n > int64(w.cfg.CallsInFlight) || (n > base && w.permitWaits.Load() >= min(laneSurplus, base))
}

// laneBase is how many lanes a worker has whatever its limiter does.
func (w *Worker) laneBase() int64 { return int64(min(w.cfg.Concurrency, w.cfg.CallsInFlight)) }

// settleRange settles r, and the halves of r when it is split, the left
// one first.
func (cr *chunkRun) settleRange(ctx context.Context, lo *laneOutbox, r jobstore.Range) error {
	stack := []*todo{{Range: r}}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		halves, err := cr.settle(ctx, lo, t)
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
