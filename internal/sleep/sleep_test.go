package sleep

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	t.Parallel()
	if err := For(t.Context(), time.Millisecond); err != nil {
		t.Errorf("For(1ms) = %v, want nil", err)
	}
	if err := For(t.Context(), 0); err != nil {
		t.Errorf("For(0) = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := For(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("For(0) on an ended context = %v, want context.Canceled", err)
	}
	// An hour that the context's end cuts short: the test ends at once.
	ctx, cancel = context.WithCancel(t.Context())
	go cancel()
	if err := For(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("For(1h) cut short = %v, want context.Canceled", err)
	}
}
