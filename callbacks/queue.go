package callbacks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capcheck/capcheck/capstore"
)

// item is one callback waiting to be written, and the request it is part of.
type item struct {
	cb capstore.Callback
	p  *pending
	i  int // index in p.res
}

// pending is a request waiting for its callbacks to be written.
type pending struct {
	res  []capstore.Result
	left atomic.Int32
	done chan struct{}

	mu  sync.Mutex
	err error
}

func (p *pending) finish(i int, r capstore.Result, err error) {
	if err != nil {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
	} else {
		p.res[i] = r
	}
	if p.left.Add(-1) == 0 {
		close(p.done)
	}
}

// queue is the group commit: requests put their callbacks in ch and wait;
// each committer takes whatever is waiting (up to MaxBatch) and writes it
// in one Ingest call. Under light load a batch is one callback and waits for
// nothing; under heavy load batches grow and Redis round trips per callback
// shrink. queued bounds what waits: beyond QueueLimit requests get 503.
type queue struct {
	store  *capstore.Store
	cfg    Config
	ch     chan item
	queued atomic.Int64
	quit   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	counts sync.Map // outcome -> *atomic.Int64, flushed to the fleet counts

	reading  chan struct{} // holds a token while the replicas are read: one read at a time
	repMu    sync.Mutex
	rep      map[string]int // replicas per master, as last read (nil: not yet)
	repErr   error          // the last read's error while rep is nil
	repRead  time.Time      // when the replicas were last read (or tried)
	repNext  time.Time      // when to read them again
	repStale bool           // the reads fail and rep is the last count
}

// replicasRefresh is how often the committers read again how many replicas
// the masters have; replicasRetry how soon after a failed read or a failed
// batch.
const (
	replicasRefresh = 5 * time.Second
	replicasRetry   = time.Second
)

func newQueue(store *capstore.Store, cfg Config) *queue {
	return &queue{store: store, cfg: cfg, ch: make(chan item, cfg.QueueLimit), quit: make(chan struct{}),
		reading: make(chan struct{}, 1)}
}

func (q *queue) start() {
	// Read the replicas now: capcheck_callback_replicated says from the
	// start how callbacks are acknowledged, not from the first batch.
	q.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), q.cfg.CommitTimeout)
		defer cancel()
		if _, err := q.replicas(ctx); err != nil {
			q.cfg.Logger.Warn("reading how many replicas Redis has failed; read again at the first callback", "err", err)
		}
	})
	for range q.cfg.Committers {
		q.wg.Go(q.commitLoop)
	}
	q.wg.Go(q.flushLoop)
}

// stop lets the committers write what is queued, then stops them. The
// caller has stopped submitting.
func (q *queue) stop(ctx context.Context) error {
	q.once.Do(func() { close(q.quit) })
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// submit queues cbs; false when the queue is full.
func (q *queue) submit(cbs []capstore.Callback) (*pending, bool) {
	n := int64(len(cbs))
	if q.queued.Add(n) > int64(q.cfg.QueueLimit) {
		q.queued.Add(-n)
		return nil, false
	}
	p := &pending{res: make([]capstore.Result, len(cbs)), done: make(chan struct{})}
	p.left.Store(int32(len(cbs)))
	for i, cb := range cbs {
		q.ch <- item{cb: cb, p: p, i: i} // never blocks: queued <= cap(ch)
	}
	return p, true
}

func (q *queue) commitLoop() {
	batch := make([]item, 0, q.cfg.MaxBatch)
	cbs := make([]capstore.Callback, 0, q.cfg.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case it := <-q.ch:
			batch = append(batch, it)
		case <-q.quit:
			select {
			case it := <-q.ch: // write what is left before leaving
				batch = append(batch, it)
			default:
				return
			}
		}
	fill:
		for len(batch) < q.cfg.MaxBatch {
			select {
			case it := <-q.ch:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		cbs = cbs[:0]
		for _, it := range batch {
			cbs = append(cbs, it.cb)
		}
		q.write(batch, cbs)
	}
}

func (q *queue) write(batch []item, cbs []capstore.Callback) {
	ctx, cancel := context.WithTimeout(context.Background(), q.cfg.CommitTimeout)
	res, err := q.ingest(ctx, cbs)
	cancel()
	if err == nil && q.cfg.OnStored != nil {
		err = q.cfg.OnStored(cbs)
	}
	q.queued.Add(-int64(len(batch)))
	if m := q.cfg.Metrics; m != nil {
		m.batch.Observe(float64(len(batch)))
	}
	switch {
	case errors.Is(err, capstore.ErrNotReplicated):
		q.add(outcomeUnreplicated, int64(len(batch)))
		q.cfg.Logger.Error("no replica confirmed a batch of callbacks in time; they are answered 503 and the provider retries them",
			"callbacks", len(batch), "err", err)
	case err != nil:
		q.add(outcomeFailed, int64(len(batch)))
		q.cfg.Logger.Error("storing callbacks failed; they are answered 503 and the provider retries them",
			"callbacks", len(batch), "err", err)
	}
	for k, it := range batch {
		var r capstore.Result
		if err == nil {
			r = res[k]
			q.add(r.String(), 1)
		}
		it.p.finish(it.i, r, err)
	}
}

// ingest writes a batch. When the masters have replicas, it returns once
// one replica of each has the writes (WAIT): Redis replicates
// asynchronously, and a callback acknowledged on the master's word alone
// is lost when the master dies before passing it on and its replica takes
// over (the provider does not send an acknowledged callback again).
func (q *queue) ingest(ctx context.Context, cbs []capstore.Callback) ([]capstore.Result, error) {
	rep, err := q.replicas(ctx)
	if err != nil {
		return nil, err
	}
	if !anyReplica(rep) {
		return q.store.Ingest(ctx, cbs)
	}
	res, err := q.store.IngestReplicated(ctx, cbs, capstore.Replication{Replicas: rep, Timeout: q.cfg.CommitTimeout / 2})
	if err != nil {
		// A replica or a master lost, maybe: read them again, soon.
		q.repMu.Lock()
		if again := q.repRead.Add(replicasRetry); again.Before(q.repNext) {
			q.repNext = again
		}
		q.repMu.Unlock()
	}
	return res, err
}

// replicas returns how many replicas each master has, read at most
// replicasRefresh ago: one INFO per master every few seconds, not per
// batch, by one committer at a time (the others take the last count, or
// wait for the first until ctx ends). A failed read keeps the last count,
// if any (a master known to have replicas is still waited for), and is
// tried again replicasRetry later, not at every batch. The read ends by
// ctx for its caller (go-redis does not end a command by its context,
// nor at all with read_timeout=-1): it goes on, and its count is kept
// when it comes.
func (q *queue) replicas(ctx context.Context) (map[string]int, error) {
	if rep, ok, err := q.lastReplicas(); ok {
		return rep, err
	}
	select {
	case q.reading <- struct{}{}:
	default:
		q.repMu.Lock()
		rep := q.rep
		q.repMu.Unlock()
		if rep != nil {
			return rep, nil
		}
		select { // none known yet: wait for the read under way
		case q.reading <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the count of Redis's replicas: %w", context.Cause(ctx))
		}
	}
	if rep, ok, err := q.lastReplicas(); ok {
		<-q.reading
		return rep, err
	}
	var (
		rep  map[string]int
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		defer func() { <-q.reading }()
		rep, err = q.keepReplicas(q.store.Replicas(ctx))
	}()
	select {
	case <-done:
		return rep, err
	case <-ctx.Done():
		return nil, fmt.Errorf("reading how many replicas Redis has: %w", context.Cause(ctx))
	}
}

// keepReplicas records a read of the replicas, and returns the count that
// holds.
func (q *queue) keepReplicas(rep map[string]int, err error) (map[string]int, error) {
	q.repMu.Lock()
	defer q.repMu.Unlock()
	q.repRead = time.Now()
	if err != nil {
		q.repNext = q.repRead.Add(replicasRetry)
		if q.rep != nil {
			if !q.repStale { // once per streak of failures
				q.cfg.Logger.Warn("reading how many replicas Redis has failed; the last count holds until it is read again",
					"replicas", q.rep, "err", err)
			}
			q.repStale = true
			return q.rep, nil
		}
		q.repErr = err
		return nil, err
	}
	if q.repStale {
		q.cfg.Logger.Info("how many replicas Redis has is read again", "replicas", rep)
		q.repStale = false
	}
	q.repNext = q.repRead.Add(replicasRefresh)
	if was, now := anyReplica(q.rep), anyReplica(rep); q.rep == nil || was != now {
		if now {
			q.cfg.Logger.Info("callbacks are acknowledged once a replica has them", "replicas", rep)
		} else {
			q.cfg.Logger.Info("callbacks are acknowledged once the master has them: it has no replicas", "replicas", rep)
		}
		if m := q.cfg.Metrics; m != nil {
			m.replicated.Set(b2f(now))
		}
	}
	q.rep, q.repErr = rep, nil
	return rep, nil
}

// lastReplicas returns the last read of the replicas (or its error) while
// it is fresh.
func (q *queue) lastReplicas() (map[string]int, bool, error) {
	q.repMu.Lock()
	defer q.repMu.Unlock()
	if q.repNext.IsZero() || !time.Now().Before(q.repNext) {
		return nil, false, nil
	}
	if q.rep != nil {
		return q.rep, true, nil
	}
	return nil, true, q.repErr
}

func anyReplica(rep map[string]int) bool {
	for _, n := range rep {
		if n > 0 {
			return true
		}
	}
	return false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (q *queue) add(outcome string, n int64) {
	v, _ := q.counts.LoadOrStore(outcome, new(atomic.Int64))
	v.(*atomic.Int64).Add(n)
	if m := q.cfg.Metrics; m != nil {
		m.callbacks.WithLabelValues(outcome).Add(float64(n))
	}
}

// flushLoop adds the outcome counts to the fleet's in Redis every second
// (and at stop): one write a second, however many requests come.
func (q *queue) flushLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			q.flush()
		case <-q.quit:
			q.flush()
			return
		}
	}
}

func (q *queue) flush() {
	st := capstore.Stats{}
	q.counts.Range(func(k, v any) bool {
		if n := v.(*atomic.Int64).Swap(0); n != 0 {
			st[k.(string)] = n
		}
		return true
	})
	if len(st) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.cfg.CommitTimeout)
	defer cancel()
	if err := q.store.AddStats(ctx, st); err != nil {
		q.cfg.Logger.Warn("adding to the fleet's callback counts failed", "err", err)
		for k, n := range st { // keep them for the next flush
			v, _ := q.counts.LoadOrStore(k, new(atomic.Int64))
			v.(*atomic.Int64).Add(n)
		}
	}
}

// commit queues cbs and waits until they are written. It returns the reply
// and its status: 200, or 503 when the queue is full or Redis failed (the
// provider retries; nothing is lost, nothing counted twice).
func (r *Receiver) commit(ctx context.Context, cbs []capstore.Callback) (reply, int) {
	if len(cbs) == 0 {
		return reply{}, http.StatusOK
	}
	p, ok := r.q.submit(cbs)
	if !ok {
		r.count(outcomeOverloaded, int64(len(cbs)))
		r.logf(outcomeOverloaded, "callback queue full: answering 503", "queued", r.q.queued.Load())
		return reply{Error: "overloaded, retry later"}, http.StatusServiceUnavailable
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return reply{Error: "request cancelled"}, http.StatusServiceUnavailable
	}
	if p.err != nil {
		return reply{Error: "storage unavailable, retry later"}, http.StatusServiceUnavailable
	}
	var rep reply
	for _, res := range p.res {
		switch res {
		case capstore.Stored:
			rep.Stored++
		case capstore.Duplicate:
			rep.Duplicate++
		case capstore.Unsolicited:
			rep.Unsolicited++
		}
	}
	return rep, http.StatusOK
}

// count counts requests (or callbacks) refused before the queue.
func (r *Receiver) count(outcome string, n int64) { r.q.add(outcome, n) }
