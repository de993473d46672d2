package ratelimit

import (
	"context"
	"log/slog"
	"slices"
	"strings"
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
