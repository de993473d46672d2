package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/internal/syncbuf"
)

// A permit whose request is about to be written within the send bound of its
// slot goes; a later one gives its slot up and takes a new one.
func TestPermitReady(t *testing.T) {
	t.Parallel()
	onBackends(t, func(t *testing.T, rdb *redis.Client, key string) {
		ctx := context.Background()
		c := newFakeClock()
		l := fakeLimiter(t, c, rdb, key, 200)
		if l.sendBound < 5*time.Millisecond || l.sendBound > 20*time.Millisecond {
			t.Fatalf("send bound at 200 req/s = %v, want 5ms to 20ms", l.sendBound)
		}

		p, err := l.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The first slot of an idle fleet may have started up to the
		// tolerance before Take returned: lateness counts from it.
		c.set(p.start.Add(l.sendBound))
		if err := p.Ready(ctx); err != nil {
			t.Fatal(err)
		}
		if got := l.Stats().VoidedAtSend; got != 0 {
			t.Errorf("VoidedAtSend = %d after a write at the bound, want 0", got)
		}

		// A stall past the bound: the slot is void, a new one is taken
		// (it has started when Ready returns, within the bound).
		p, err = l.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stalled := p.start.Add(l.sendBound + time.Millisecond)
		c.set(stalled)
		if err := p.Ready(ctx); err != nil {
			t.Fatal(err)
		}
		if got := l.Stats().VoidedAtSend; got != 1 {
			t.Errorf("VoidedAtSend = %d after a stall, want 1", got)
		}
		if late := p.Late(); late > l.sendBound || p.start.Before(stalled.Add(-l.sendBound)) {
			t.Errorf("renewed permit started %v before the write, want a slot within %v", late, l.sendBound)
		}
		if got := l.Stats().Permits; got != 3 {
			t.Errorf("Permits = %d, want 3 (two taken, one renewed)", got)
		}

		// No permit when the context ends: the request is not sent.
		p, err = l.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.set(c.Now().Add(time.Second))
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		if err := p.Ready(canceled); err == nil {
			t.Error("Ready on a canceled context after a stall returned nil, want an error")
		}
	})
}

// Replicas started with different rates: the fleet sends at the lowest, and
// the faster replica says so once.
func TestMixedRates(t *testing.T) {
	t.Parallel()
	onBackends(t, func(t *testing.T, rdb *redis.Client, key string) {
		c := newFakeClock()
		var logs syncbuf.Buffer
		fast, err := New(rdb, Config{Key: key, Limit: PerSecond(100), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		slow := fakeLimiter(t, c, rdb, key, 50)
		ts := simulate(t, c, []*Limiter{withClock(fast, c), slow}, 60)
		// Until the slower replica's first slot, the faster one's rate
		// holds (one window may carry both rates' slots); after it,
		// the slower one's.
		if most := maxWindow(ts, time.Second); most > 101 {
			t.Errorf("a 1s window carries %d permits, want at most the faster rate+1 = 101", most)
		}
		first := ts[0]
		checkSpacing(t, slices.DeleteFunc(ts, func(x time.Time) bool { return x.Before(first.Add(time.Second)) }), 50)
		out := logs.String()
		if n := strings.Count(out, "different rates"); n != 1 {
			t.Errorf("the faster replica warned %d times, want once:\n%s", n, out)
		}
		if !strings.Contains(out, "fleet_rate=\"50 req/s\"") || !strings.Contains(out, "rate=\"100 req/s\"") {
			t.Errorf("warning does not name both rates:\n%s", out)
		}
	})
}

// When the slower replica stops sending, the faster one's rate applies again.
func TestMixedRatesSlowerLeaves(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	rdb := backends[0].newClient(t)
	key := redistest.NewPrefix(t) + ":ratelimit"
	slow := fakeLimiter(t, c, rdb, key, 50)
	if got := simulate(t, c, []*Limiter{slow}, 10); len(got) != 10 {
		t.Fatalf("%d permits", len(got))
	}
	c.set(c.Now().Add(3 * time.Second)) // longer than the hold of a rate
	fast := withClock(newLimiter(t, rdb, key, 100), c)
	checkSpacing(t, simulate(t, c, []*Limiter{fast}, 60), 100)
}

// scriptCalls counts the limiter's script runs on a Redis client.
type scriptCalls struct {
	Scripter
	n atomic.Int64
}

func (s *scriptCalls) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	s.n.Add(1)
	return s.Scripter.EvalSha(ctx, sha1, keys, args...)
}

func (s *scriptCalls) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	s.n.Add(1)
	return s.Scripter.Eval(ctx, script, keys, args...)
}

// A replica whose goroutines queue for permits takes its slots in blocks:
// one script call reserves the next ones for several holders, and the
// fleet's guarantee holds (no 1s window over rate+1 requests written).
func TestBlocks(t *testing.T) {
	t.Parallel()
	const rate, replicas, goroutines = 400, 3, 8
	if got := blockSize(rate); got != blockCap {
		t.Fatalf("blockSize(%v) = %d, want %d", float64(rate), got, blockCap)
	}
	calls := &scriptCalls{Scripter: redistest.Shared(t).Client(t)}
	key := redistest.NewPrefix(t) + ":ratelimit"
	var limiters []*Limiter
	for range replicas {
		limiters = append(limiters, newLimiter(t, calls, key, rate))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var p permits
	drive(ctx, t, limiters, goroutines, &p)
	ts := p.sorted()
	var permits int64
	for _, l := range limiters {
		permits += l.Stats().Permits
	}
	n := calls.n.Load()
	t.Logf("%d permits, %d requests written, %d script calls, max %d in a 1s window, achieved %.1f/s",
		permits, len(ts), n, maxWindow(ts, time.Second), achieved(ts))
	if most := maxWindow(ts, time.Second); most > rate+1 {
		t.Errorf("a 1s window carries %d requests, want at most rate+1 = %d", most, rate+1)
	}
	if permits < rate {
		t.Fatalf("%d permits in 2s at %v/s", permits, float64(rate))
	}
	if 3*n > permits {
		t.Errorf("%d script calls for %d permits, want at most a third as many (blocks of up to %d)", n, permits, blockCap)
	}
}

// A block of slots is used at the slots' times, on the fake clock: every
// slot but a block's last without a script call, evenly spaced, and never
// before the slot started on Redis's clock, even when the script runs a
// while after it was sent (a loaded host: the local estimate of the slot's
// start is then early).
func TestBlockSpacing(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{0, 2 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			t.Parallel()
			const rate = 400
			c := newFakeClock()
			calls := &scriptCalls{Scripter: &slowScript{Scripter: redistest.Shared(t).Client(t), c: c, d: delay}}
			l := withClock(newLimiter(t, calls, redistest.NewPrefix(t)+":ratelimit", rate), c)
			// Slots ahead of now (another replica took those before
			// them), and goroutines queued behind each holder: a confirm
			// reserves a block for them.
			for range 4 {
				if _, err := l.run(context.Background(), "reserve", ""); err != nil {
					t.Fatal(err)
				}
			}
			l.queued.Add(blockCap)
			for i := 0; l.next.n != blockCap; i++ {
				if i == 4*blockCap {
					t.Fatalf("no block of %d slots reserved after %d permits", blockCap, i)
				}
				takeAt(t, c, l)
			}
			l.queued.Add(-blockCap)
			block := l.next
			var ts []time.Time
			before := calls.n.Load()
			for range blockCap {
				ts = append(ts, takeAt(t, c, l))
			}
			if got := calls.n.Load() - before; got != 1 {
				t.Errorf("%d script calls for a block of %d slots, want 1 (its last slot's confirm)", got, blockCap)
			}
			iv := usToDuration(mustFloat(t, l.interval))
			for i, at := range ts {
				slot := time.Unix(0, int64(math.Round((block.start+float64(i)*block.step)*1e3)))
				if early := slot.Sub(at); early > time.Microsecond {
					t.Errorf("permit %d of the block came %v before its slot started", i, early)
				}
				if i > 0 {
					if gap := at.Sub(ts[i-1]); gap < iv-time.Microsecond || gap > iv+time.Microsecond {
						t.Errorf("permit %d came %v after the one before, want one interval %v", i, gap, iv)
					}
				}
			}
		})
	}
}

// slowScript runs the limiter's script d after it was sent, on c's time.
type slowScript struct {
	Scripter
	c *fakeClock
	d time.Duration
}

func (s *slowScript) late(args []any) []any {
	if s.d == 0 {
		return args
	}
	s.c.set(s.c.Now().Add(s.d))
	args = slices.Clone(args)
	args[1] = formatUS(float64(s.c.Now().UnixNano()) / 1e3) // the script's now
	return args
}

func (s *slowScript) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return s.Scripter.EvalSha(ctx, sha1, keys, s.late(args)...)
}

func (s *slowScript) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return s.Scripter.Eval(ctx, script, keys, s.late(args)...)
}

// takeAt takes a permit from l, moving c from sleep to sleep, and returns
// the fake time it was given.
func takeAt(t *testing.T, c *fakeClock, l *Limiter) time.Time {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := l.Take(context.Background())
		done <- err
		c.notify()
	}()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Take: %v", err)
			}
			return c.Now()
		default:
		}
		if asleep, next := c.sleeping(); asleep > 0 {
			c.set(next)
			continue
		}
		c.await(t)
	}
}
