package jobstore

import (
	"context"
	"fmt"
)

// finishedChannel is the pub/sub channel on which EndFinalize announces that
// a job finished.
func finishedChannel(id string) string { return jobKey(id) + ":finished" }

// Watch is a subscription to the announcement that a job finished.
type Watch struct {
	// C receives a value when the job may have finished: read the job to
	// know. It is a hint only: pub/sub loses what is published while the
	// subscriber reconnects (a failover), so a caller also reads the job
	// now and then.
	C     <-chan struct{}
	close func() error
}

// Close ends the subscription.
func (w *Watch) Close() error { return w.close() }

// WatchFinished subscribes to the announcement EndFinalize makes when job
// finishes. It returns once Redis has confirmed the subscription, so an
// announcement made after it returns is not missed (while the connection
// holds). go-redis reconnects and subscribes again after a failover.
func (s *Store) WatchFinished(ctx context.Context, job string) (*Watch, error) {
	ps := s.rdb.Subscribe(ctx, finishedChannel(job))
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close() // the subscription failed: nothing to keep
		return nil, wrap("watching", job, err)
	}
	c := make(chan struct{}, 1)
	msgs := ps.Channel()
	go func() {
		for range msgs {
			select {
			case c <- struct{}{}:
			default: // one pending hint is enough
			}
		}
	}()
	return &Watch{C: c, close: ps.Close}, nil
}

// announceFinished tells WatchFinished's subscribers that job is st now. A
// failure is not the job's: the state is stored, and waiters also read it
// every few seconds.
func (s *Store) announceFinished(ctx context.Context, job string, st State) {
	s.rdb.Publish(ctx, finishedChannel(job), string(st))
}

// abortsChannel is the pub/sub channel on which Abort announces the job it
// stopped (the message is the job's ID).
const abortsChannel = "capcheck:aborts"

// AbortWatch is a subscription to the announcements of jobs aborted.
type AbortWatch struct {
	// C receives the ID of a job that may have been aborted: read the job
	// to know. A hint only, as Watch's.
	C     <-chan string
	close func() error
}

// Close ends the subscription.
func (w *AbortWatch) Close() error { return w.close() }

// WatchAborts subscribes to the announcements Abort makes. It returns once
// Redis has confirmed the subscription.
func (s *Store) WatchAborts(ctx context.Context) (*AbortWatch, error) {
	ps := s.rdb.Subscribe(ctx, abortsChannel)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("watching aborted jobs: %w", err)
	}
	c := make(chan string, 16)
	msgs := ps.Channel()
	go func() {
		defer close(c)
		for m := range msgs {
			c <- m.Payload
		}
	}()
	return &AbortWatch{C: c, close: ps.Close}, nil
}
