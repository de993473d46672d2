package sleep

import (
	"context"
	"sync"
	"time"
)

// Precisely waits like For, but wakes when the time has come rather than up
// to a millisecond later: the Go runtime sleeps for its timers in whole
// milliseconds (epoll_wait), so a timer fires half a millisecond late on
// average, and while it is overdue the runtime's monitor thread polls every
// 20 µs, each poll a context switch. Precisely waits on a timer of the
// system's instead (a Linux timerfd, in the runtime's poller), one waiter
// at a time: meant for one goroutine that waits often, such as a rate
// limiter's. Another waiter meanwhile, or a system without such a timer,
// waits as For does.
func Precisely(ctx context.Context, d time.Duration) error {
	p := shared()
	if d <= 0 || d > preciseMax || p.t == nil || !p.mu.TryLock() {
		return For(ctx, d)
	}
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.t.wait(ctx, d)
}

// preciseMax is the longest wait Precisely puts on the system's timer: a
// longer one needs no precision, and a 32-bit system's timer holds no more
// than 2^31 seconds.
const preciseMax = time.Hour

// precise is the process's system timer, nil when it has none.
type precise struct {
	mu sync.Mutex // one waiter at a time
	t  *sysTimer
}

var shared = sync.OnceValue(func() *precise {
	t, err := newSysTimer()
	if err != nil {
		t = nil
	}
	return &precise{t: t}
})
