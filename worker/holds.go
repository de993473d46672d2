package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/tasks"
)

// A worker holds the chunks it runs in the job store (jobstore.HoldRuns),
// renewing the holds every holdEvery; a hold lapses holdTTL after its last
// renewal. Every worker claims lapsed holds on the same tick and enqueues a
// takeover of their chunks, so the chunks of a worker that died (SIGKILL,
// a lost host) go on within seconds, not when asynq's lease on the task
// expires (30 s, and its recoverer runs once a minute). A worker too
// starved to renew for holdTTL only costs a second run of its chunk, which
// the job store fences (an entry is settled and counted once).
const (
	holdEvery = time.Second
	holdTTL   = 5 * time.Second
	// claimMax bounds the lapsed holds one tick claims.
	claimMax = 64
	// retakeMax bounds the takeovers of one chunk: one that kills every
	// worker that runs it is left to asynq's retries, which archive it.
	retakeMax = 3
)

// holds are the chunk runs this worker holds: member → how many runs of it.
type holds struct {
	mu    sync.Mutex
	owner string // this worker's prefix of its members
	runs  map[string]int
}

func newHolds() *holds {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &holds{owner: hex.EncodeToString(b), runs: make(map[string]int)}
}

// member is the job store's string for this worker's run of c: the owner,
// then the task's payload.
func (h *holds) member(c tasks.Chunk) string {
	b, _ := json.Marshal(c) // cannot fail: strings and ints
	return h.owner + " " + string(b)
}

// hold holds c for the chunk's run and returns what releases it. Only a
// started worker holds (it renews them).
func (w *Worker) hold(ctx context.Context, c tasks.Chunk) (release func()) {
	w.mu.Lock()
	started := w.started
	w.mu.Unlock()
	if !started {
		return func() {}
	}
	m := w.holds.member(c)
	w.holds.mu.Lock()
	w.holds.runs[m]++
	w.holds.mu.Unlock()
	if err := w.store.HoldRuns(ctx, holdTTL, m); err != nil {
		w.log.Debug("could not hold a chunk run now; the next tick will", "err", err)
	}
	return func() {
		w.holds.mu.Lock()
		w.holds.runs[m]--
		last := w.holds.runs[m] == 0
		if last {
			delete(w.holds.runs, m)
		}
		w.holds.mu.Unlock()
		if !last {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := w.store.ReleaseRun(ctx, m); err != nil {
			// The hold lapses and another worker takes over a settled
			// chunk: a task that finds nothing to send.
			w.log.Debug("could not release a chunk run", "err", err)
		}
	}
}

// keepHolds renews this worker's holds and takes over lapsed ones every
// holdEvery until ctx ends.
func (w *Worker) keepHolds(ctx context.Context) {
	every(ctx, holdEvery, func() { w.renewHolds(ctx) })
}

// renewHolds renews this worker's holds and takes over lapsed ones, once.
func (w *Worker) renewHolds(ctx context.Context) {
	w.holds.mu.Lock()
	runs := make([]string, 0, len(w.holds.runs))
	for m := range w.holds.runs {
		runs = append(runs, m)
	}
	w.holds.mu.Unlock()
	lapsed, err := w.store.HoldAndClaimRuns(ctx, holdTTL, claimMax, runs...)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not renew the holds of the chunks running here; another worker may run them too", "err", err)
		}
		return
	}
	if err := w.takeOver(ctx, lapsed); err != nil && ctx.Err() == nil {
		w.log.Warn("could not take over the chunks of a worker gone", "err", err)
	}
}

// every calls fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// takeOver enqueues a takeover of each chunk whose hold lapsed.
func (w *Worker) takeOver(ctx context.Context, lapsed []string) error {
	if len(lapsed) == 0 {
		return nil
	}
	n := 0
	for _, m := range lapsed {
		_, payload, _ := strings.Cut(m, " ")
		c, err := tasks.ParseChunk(asynq.NewTask(tasks.TypeChunk, []byte(payload)))
		if err != nil {
			w.log.Warn("unreadable chunk hold dropped", "err", err)
			continue
		}
		log := w.log.With("job", c.Job, "chunk", c.Chunk, "retake", c.Retake)
		if c.Retake >= retakeMax {
			log.Warn("chunk lost its worker again; left to asynq's lease on its task")
			continue
		}
		c.Retake++
		if _, err := tasks.Enqueue(ctx, w.enq, tasks.NewChunk(c)); err != nil {
			return err
		}
		log.Info("chunk of a worker gone taken over")
		n++
	}
	if n > 0 {
		tasks.Announce(ctx, w.store.Redis())
	}
	return nil
}
