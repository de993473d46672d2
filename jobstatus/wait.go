package jobstatus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/capcheck/capcheck/jobstore"
)

// unreachableFor is how long Wait keeps polling through Redis errors.
const unreachableFor = 2 * time.Minute

// ErrTimeout is returned by Wait when its timeout passes first.
var ErrTimeout = errors.New("timed out waiting for the job")

// ErrGone is returned by Wait when the job's record, read before, is no
// longer in Redis: it will never finish.
var ErrGone = errors.New("the job's record is gone from Redis")

// WaitOptions tune Wait.
type WaitOptions struct {
	// Poll is how often the job is read besides the announcement of its
	// end (for Progress, and in case the announcement is lost in a Redis
	// failover). Defaults to 500ms with Progress, else 5s.
	Poll time.Duration
	// Timeout bounds the wait; 0 waits for ever. Defaults to 0.
	Timeout time.Duration
	// Progress, when set, is called with each status read.
	Progress func(*Status)
}

// Wait blocks until job id is finished and returns its final status. A job
// not yet created is waited for too (an enqueue may be about to start); one
// whose record was read and is then missing ends the wait with ErrGone (a
// Redis restarted without persistence, flushed, or the record expired). It
// learns of the end from the job store's announcement (pub/sub), at once,
// and also reads the job every Poll.
func Wait(ctx context.Context, store *jobstore.Store, id string, o WaitOptions) (*Status, error) {
	poll := o.Poll
	if poll <= 0 {
		poll = 5 * time.Second
		if o.Progress != nil {
			poll = 500 * time.Millisecond
		}
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.Timeout, fmt.Errorf("job %s: %w after %s", id, ErrTimeout, o.Timeout))
		defer cancel()
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var watch *jobstore.Watch
	defer func() {
		if watch != nil {
			watch.Close()
		}
	}()
	var failingSince time.Time
	seen := false
	for {
		if watch == nil {
			// Subscribed before the read: an end announced after it is
			// not missed. Without Redis, the next try is the next poll.
			watch, _ = store.WatchFinished(ctx, id)
		}
		var finished <-chan struct{}
		if watch != nil {
			finished = watch.C
		}
		s, err := Get(ctx, store, id)
		switch {
		case err == nil:
			failingSince, seen = time.Time{}, true
			if o.Progress != nil {
				o.Progress(s)
			}
			if s.Finished() {
				return s, nil
			}
		case errors.Is(err, jobstore.ErrNotFound):
			if seen {
				return nil, fmt.Errorf("job %s: %w (Redis restarted without persistence, flushed, or the record expired: "+
					"a finished job's does after the workers' --retention, so look for its files under --out first); "+
					"if it did not finish, it will not: enqueue the list again", id, ErrGone)
			}
		case ctx.Err() != nil:
		case failingSince.IsZero():
			// A Redis restart or failover must not end a night's wait.
			failingSince = time.Now()
		case time.Since(failingSince) > unreachableFor:
			return nil, fmt.Errorf("job %s: Redis unreachable for %s: %w", id, unreachableFor, err)
		}
		select {
		case <-ctx.Done():
			return s, context.Cause(ctx)
		case <-t.C:
		case <-finished:
		}
	}
}
