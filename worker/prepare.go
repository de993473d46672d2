package worker

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/redis/go-redis/v9"
)

// What a job's first request waits for, on an idle worker woken by the
// announcement of its first chunk, is a chain: the dequeue, the hold, the
// job's head and the chunk, the first permit, the write. The worker readies
// at start (prepare) and overlaps (startWarm) what need not be in that
// chain: the API client's connections, the Redis scripts of the hold, the
// records and the limiter (a script missing from Redis's cache costs a
// NOSCRIPT round trip, the script sent whole and compiled), and Redis
// connections for the chunks' first reads.

// limiterLoader is a Limiter that loads its script ahead;
// *ratelimit.Limiter satisfies it.
type limiterLoader interface {
	Load(ctx context.Context) error
}

// prepare readies the worker for its first chunk, in the background after
// Start: nothing in it is needed for correctness, so a failure is only
// logged (the first chunk then pays for it).
func (w *Worker) prepare(ctx context.Context) {
	var errs []error
	if err := w.store.LoadScripts(ctx); err != nil {
		errs = append(errs, err)
	}
	if l, ok := w.lim.(limiterLoader); ok {
		if err := l.Load(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := openRedisConns(ctx, w.store.Redis(), w.cfg.Concurrency); err != nil {
		errs = append(errs, err)
	}
	if wm, ok := w.api.(warmer); ok {
		if err := wm.Warm(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil && ctx.Err() == nil {
		w.log.Debug("could not ready everything for the first chunk ahead", "err", err)
	}
}

// openRedisConns opens up to n connections of rdb's pool, and of its pool
// for pipelines (go-redis keeps one apart), for a single server's client (a
// Cluster's pools are per node and left alone), so that chunks picked up at
// once read Redis without dialing first: a dial, HELLO and the client's
// set-up are about 1.5 ms on loopback, more on a busy host. The pools keep
// them while they are used within their idle time.
func openRedisConns(ctx context.Context, rdb redis.UniversalClient, n int) error {
	c, ok := rdb.(*redis.Client)
	if !ok {
		return nil
	}
	opt := c.Options()
	conns := make([]*redis.Conn, 0, n)
	defer func() {
		for _, cn := range conns {
			_ = cn.Close() // back to the pool
		}
	}()
	// Each held until all are open: n distinct connections.
	for range min(n, opt.PoolSize) {
		cn := c.Conn()
		conns = append(conns, cn)
		if err := cn.Ping(ctx).Err(); err != nil {
			return err
		}
	}
	// Pipelines at once each take a connection, a new one while none is
	// idle. A negative pool size: pipelines use the main pool.
	pipes := max(0, min(n, cmp.Or(opt.PipelinePoolSize, redis.DefaultPipelinePoolSize)))
	var wg sync.WaitGroup
	errs := make([]error, pipes)
	for i := range pipes {
		wg.Go(func() {
			_, errs[i] = c.Pipelined(ctx, func(p redis.Pipeliner) error { return p.Ping(ctx).Err() })
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startWarm opens the API client's connections (capapi's Warm: nothing to
// do when they are open) while the chunk's hold and reads go on, and
// returns what waits for it: called before the first permit, so that DNS,
// TCP and TLS are not paid inside a slot.
func (w *Worker) startWarm(ctx context.Context, log *slog.Logger) (wait func()) {
	wm, ok := w.api.(warmer)
	if !ok {
		return func() {}
	}
	done := make(chan error, 1)
	go func() { done <- wm.Warm(ctx) }()
	return func() {
		if err := <-done; err != nil {
			log.Debug("could not open connections to the API ahead of the calls", "err", err)
		}
	}
}
