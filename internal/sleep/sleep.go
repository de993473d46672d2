// Package sleep waits for a duration the way a context-aware Go program
// must: until the time has passed or the context ends, whichever is first.
package sleep

import (
	"context"
	"time"
)

// For waits for d or until ctx ends, whichever is first; it returns
// ctx.Err() when ctx ended first (or had ended already), else nil. A d of 0
// or less does not wait.
func For(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
