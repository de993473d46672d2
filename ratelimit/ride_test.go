package ratelimit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// countTrips counts the round trips a client makes: each command sent on
// its own, and each pipeline, but for a new connection's handshake.
type countTrips struct{ n atomic.Int64 }

func (c *countTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *countTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *countTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !handshake(cmds[0]) {
			c.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

func handshake(cmd redis.Cmder) bool { return cmd.Name() == "hello" || cmd.Name() == "client" }

// incrRider increments key, in the limiter's round trip or alone, and
// remembers the value it saw.
type incrRider struct {
	rdb    *redis.Client
	key    string
	got    int64
	alone  bool
	queued bool
	fail   error // settle's error
}

func (r *incrRider) Queue(ctx context.Context, pipe redis.Pipeliner) func() error {
	r.queued = true
	cmd := pipe.Incr(ctx, r.key)
	return func() error {
		r.got = cmd.Val()
		if r.fail != nil {
			return r.fail
		}
		return cmd.Err()
	}
}

func (r *incrRider) Alone(ctx context.Context) error {
	r.alone = true
	var err error
	r.got, err = r.rdb.Incr(ctx, r.key).Result()
	return err
}

// TakeRiding does the rider's work before it returns a permit, and in the
// limiter's own round trips: the permits cost no more round trips than
// Take's, but for the riders that had to go alone.
func TestTakeRiding(t *testing.T) {
	onBackends(t, func(t *testing.T, rdb *redis.Client, key string) {
		ctx := context.Background()
		l := newLimiter(t, rdb, key, 1000)
		if _, err := l.Take(ctx); err != nil { // loads the script
			t.Fatal(err)
		}
		trips := &countTrips{}
		rdb.AddHook(trips)
		trips0, rt0 := trips.n.Load(), l.Stats().RoundTrips

		const n = 30
		alone, rode := 0, 0
		for i := 1; i <= n; i++ {
			r := &incrRider{rdb: rdb, key: key + ":rider"}
			if _, err := l.TakeRiding(ctx, r); err != nil {
				t.Fatalf("permit %d: %v", i, err)
			}
			if r.got != int64(i) {
				t.Fatalf("permit %d returned with the rider's count at %d, want %d: its work not done first", i, r.got, i)
			}
			switch {
			case r.alone && r.queued:
				t.Fatalf("permit %d: the rider both rode and went alone", i)
			case r.alone:
				alone++
			case r.queued:
				rode++
			}
		}
		if rode == 0 {
			t.Errorf("no rider rode a round trip of the limiter's (%d alone)", alone)
		}
		extra := trips.n.Load() - trips0 - (l.Stats().RoundTrips - rt0)
		if extra != int64(alone) {
			t.Errorf("%d round trips besides the limiter's, want %d (the riders that went alone; %d rode)", extra, alone, rode)
		}
		if got := l.Stats().Permits; got != n+1 {
			t.Errorf("%d permits, want %d", got, n+1)
		}
	})
}

// A rider whose work fails gets its error and no permit; the limiter goes
// on.
func TestTakeRidingRiderFails(t *testing.T) {
	onBackends(t, func(t *testing.T, rdb *redis.Client, key string) {
		ctx := context.Background()
		l := newLimiter(t, rdb, key, 1000)
		boom := errors.New("boom")
		var failed int
		for i := 0; i < 5; i++ {
			r := &incrRider{rdb: rdb, key: key + ":rider", fail: boom}
			p, err := l.TakeRiding(ctx, r)
			if r.alone {
				continue // no round trip to ride: its own work succeeded
			}
			if !errors.Is(err, boom) || p != nil {
				t.Fatalf("TakeRiding = %v, %v; want no permit and the rider's error", p, err)
			}
			failed++
		}
		if failed == 0 {
			t.Fatal("no rider rode a round trip of the limiter's")
		}
		if got := l.Stats().Permits; got != int64(5-failed) {
			t.Errorf("%d permits, want %d", got, 5-failed)
		}
		if _, err := l.Take(ctx); err != nil {
			t.Fatalf("Take after a failed rider: %v", err)
		}
	})
}

// scriptOnly is a Scripter without pipelines.
type scriptOnly struct{ Scripter }

// With a client that has no pipelines, the rider goes alone.
func TestTakeRidingNoPipelines(t *testing.T) {
	onBackends(t, func(t *testing.T, rdb *redis.Client, key string) {
		ctx := context.Background()
		l := newLimiter(t, scriptOnly{rdb}, key, 1000)
		for i := 1; i <= 3; i++ {
			r := &incrRider{rdb: rdb, key: key + ":rider"}
			if _, err := l.TakeRiding(ctx, r); err != nil {
				t.Fatal(err)
			}
			if !r.alone || r.queued || r.got != int64(i) {
				t.Fatalf("permit %d: alone %v, queued %v, count %d; want it alone, count %d", i, r.alone, r.queued, r.got, i)
			}
		}
	})
}

// A pause, or a read of it, while a holder rides does not touch the
// holder's rider (go test -race).
func TestTakeRidingWithPauseReads(t *testing.T) {
	onBackends(t, func(t *testing.T, rdb *redis.Client, key string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		l := newLimiter(t, rdb, key, 2000)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				_, _ = l.PausedFor(ctx)
			}
		}()
		for i := 1; i <= 100; i++ {
			r := &incrRider{rdb: rdb, key: key + ":rider"}
			if _, err := l.TakeRiding(ctx, r); err != nil {
				t.Fatal(err)
			}
			if r.got != int64(i) {
				t.Fatalf("permit %d: the rider's count is %d", i, r.got)
			}
		}
		cancel()
		<-done
	})
}
