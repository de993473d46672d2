package sleep

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// A wait never ends before its time, whatever ended the waits before it:
// an expiry nobody read, a cancellation, a deadline left behind.
func TestPreciselyNeverEarly(t *testing.T) {
	for i := range 200 {
		d := time.Duration(20+i%7*40) * time.Microsecond
		if i%5 == 0 {
			// A wait canceled about when its timer expires.
			ctx, cancel := context.WithCancel(t.Context())
			go func() { time.Sleep(d); cancel() }()
			_ = Precisely(ctx, d)
			continue
		}
		begin := time.Now()
		if err := Precisely(t.Context(), d); err != nil {
			t.Fatalf("wait %d: Precisely(%v) = %v, want nil", i, d, err)
		}
		if got := time.Since(begin); got < d {
			t.Fatalf("wait %d: Precisely(%v) returned after %v", i, d, got)
		}
	}
}

func TestPreciselyCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Precisely(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Precisely(1h) on an ended context = %v, want context.Canceled", err)
	}
	// An hour that the context's end cuts short: the test ends at once.
	ctx, cancel = context.WithCancel(t.Context())
	go cancel()
	if err := Precisely(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Precisely(1h) cut short = %v, want context.Canceled", err)
	}
	if err := Precisely(t.Context(), 0); err != nil {
		t.Errorf("Precisely(0) = %v, want nil", err)
	}
}

// Waiters at once: one has the system timer, the others wait as For does.
func TestPreciselyConcurrent(t *testing.T) {
	const d = time.Millisecond
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			begin := time.Now()
			if err := Precisely(t.Context(), d); err != nil {
				t.Errorf("Precisely(%v) = %v, want nil", d, err)
			}
			if got := time.Since(begin); got < d {
				t.Errorf("Precisely(%v) returned after %v", d, got)
			}
		})
	}
	wg.Wait()
}

func TestPreciselyHasSystemTimer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("a system timer on Linux only")
	}
	if shared().t == nil {
		t.Fatal("no timerfd: Precisely waits as For does")
	}
}
