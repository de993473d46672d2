package jobstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
)

// TestOnRecord: the hook sees what Record and Add took, at the store's
// clock, and its error is theirs; a stale Record reaches no hook.
func TestOnRecord(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1_700_000_000_123)
	var mu sync.Mutex
	var got []jobstore.Recorded
	var fail error
	s := jobstore.New(redistest.Shared(t).Client(t),
		jobstore.WithClock(func() time.Time { return at }),
		jobstore.OnRecord(func(job string, r jobstore.Recorded) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, r)
			return fail
		}))
	b := bundle{ctx: context.Background(), store: s, id: redistest.NewPrefix(t)}
	b.enqueued(t, 1, 4)
	o := jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Accepted, Attempts: 1}
	if err := s.Record(b.ctx, b.id, 0, 0, o, jobstore.Counters{Requests: 1, Accepted: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(b.ctx, b.id, jobstore.Counters{Requests: 1, RateLimited: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(b.ctx, b.id, 7, 0, o, jobstore.Counters{Requests: 1}); !errors.Is(err, jobstore.ErrStale) {
		t.Fatalf("Record of another generation = %v, want ErrStale", err)
	}
	want := []jobstore.Recorded{
		{Chunk: 0, Outcome: &o, Counters: jobstore.Counters{Requests: 1, Accepted: 2}, At: at},
		{Chunk: -1, Counters: jobstore.Counters{Requests: 1, RateLimited: 1}, At: at},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
	if j, err := s.Job(b.ctx, b.id); err != nil || !j.StartedAt.Equal(at) {
		t.Errorf("started_at = %v (%v), want the store's clock %v", j.StartedAt, err, at)
	}

	fail = errors.New("disk full")
	if err := s.Add(b.ctx, b.id, jobstore.Counters{Requests: 1}); !errors.Is(err, fail) {
		t.Errorf("Add with a failing hook = %v, want its error", err)
	}
}
