package ratelimit

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when the test moves it: Sleep blocks
// until the clock passes its deadline or its context ends. Limiters given it
// (withClock) also hand its time to the script as Redis's, so tests assert
// exact times instead of wall-clock spans.
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	sleepers []*sleeper
	changed  chan struct{} // a sleeper came or went, or a driven goroutine ended
	// late is added to every sleep, as a real timer wakes up late.
	late time.Duration
}

type sleeper struct {
	until time.Time
	wake  chan struct{}
}

// epoch is where fake clocks start: an old time keeps the script's µs values
// small, so float64 holds them to the nanosecond.
var epoch = time.Unix(1_000_000, 0)

func newFakeClock() *fakeClock {
	return &fakeClock{now: epoch, changed: make(chan struct{}, 1)}
}

// withClock makes l keep c's time, in Go and in the script.
func withClock(l *Limiter, c *fakeClock) *Limiter {
	l.clk, l.scriptNow = c, true
	return l
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	c.mu.Lock()
	s := &sleeper{until: c.now.Add(d + c.late), wake: make(chan struct{})}
	c.sleepers = append(c.sleepers, s)
	c.mu.Unlock()
	c.notify()
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		if i := slices.Index(c.sleepers, s); i >= 0 {
			c.sleepers = slices.Delete(c.sleepers, i, i+1)
		}
		c.mu.Unlock()
		c.notify()
		return ctx.Err()
	}
}

// sleeping returns how many goroutines are in Sleep, and the earliest end.
func (c *fakeClock) sleeping() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for _, s := range c.sleepers {
		if next.IsZero() || s.until.Before(next) {
			next = s.until
		}
	}
	return len(c.sleepers), next
}

// set moves the clock to t (never back) and wakes the sleepers due.
func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	c.sleepers = slices.DeleteFunc(c.sleepers, func(s *sleeper) bool {
		if s.until.After(c.now) {
			return false
		}
		close(s.wake)
		return true
	})
}

// await blocks until the clock changes (a sleeper came or went, a driven
// goroutine ended).
func (c *fakeClock) await(t *testing.T) {
	t.Helper()
	select {
	case <-c.changed:
	case <-time.After(30 * time.Second): // a hang, not a timing bound
		t.Fatal("the fake clock waited 30s for a goroutine to sleep or end")
	}
}

// simulate runs one goroutine per limiter, each taking permits (recorded at
// the fake time) until it has n of them, and moves the clock from sleep to
// sleep until they are done. Before the clock passes an event's time, it is
// set to that time and the event runs, with every goroutine asleep.
func simulate(t *testing.T, c *fakeClock, limiters []*Limiter, n int, events ...event) []time.Time {
	t.Helper()
	var p permits
	var live sync.WaitGroup
	left := len(limiters)
	var mu sync.Mutex
	for _, l := range limiters {
		live.Go(func() {
			defer func() {
				mu.Lock()
				left--
				mu.Unlock()
				c.notify()
			}()
			for range n {
				if _, err := l.Wait(context.Background()); err != nil {
					t.Errorf("Wait: %v", err)
					return
				}
				p.add(c.Now())
			}
		})
	}
	slices.SortFunc(events, func(a, b event) int { return a.at.Compare(b.at) })
	for {
		mu.Lock()
		k := left
		mu.Unlock()
		if k == 0 {
			break
		}
		asleep, next := c.sleeping()
		if asleep < k {
			c.await(t)
			continue
		}
		if len(events) > 0 && !events[0].at.After(next) {
			c.set(events[0].at)
			events[0].do()
			events = events[1:]
			continue
		}
		c.set(next)
	}
	live.Wait()
	return p.sorted()
}

// event is something a test does at a fake time during simulate.
type event struct {
	at time.Time
	do func()
}
