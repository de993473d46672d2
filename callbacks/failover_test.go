package callbacks_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/callbacks"
	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/internal/redistest"
)

// TestRedisStopsAnswering: while Redis does not answer (a master frozen, as
// while a failover runs), callbacks get 503 with Retry-After and are not
// acknowledged; the provider's retries store them once Redis is back. Every
// callback acknowledged is recorded and counted once for its job.
func TestRedisStopsAnswering(t *testing.T) {
	t.Parallel()
	srv := redistest.StartPrivate(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, ReadTimeout: 200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	store := capstore.New(rdb, capstore.Options{})
	ctx := context.Background()
	ord, err := store.RegisterJob(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	nums := make([]uint64, n)
	var items []capstore.Awaited
	for i := range n {
		nums[i] = uint64(919876600000 + i)
		items = append(items, capstore.Awaited{Number: nums[i], Index: uint32(i)})
	}
	if err := store.Await(ctx, "job", ord, items, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	r := startReceiver(t, store, callbacks.Config{CommitTimeout: 300 * time.Millisecond})
	post := func(num uint64) *httptest.ResponseRecorder { return postTo(r.Handler(), num) }

	// Four senders retry each callback until it is acknowledged, as the
	// provider does; Redis freezes for a while in the middle.
	var mu sync.Mutex
	refused := 0
	half := make(chan struct{})
	var wg sync.WaitGroup
	for s := range 4 {
		wg.Go(func() {
			for i := s; i < n; i += 4 {
				for {
					w := post(nums[i])
					if w.Code == http.StatusOK {
						break
					}
					if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
						t.Errorf("callback %d: %d %q %s, want 200, or 503 with Retry-After", i, w.Code, w.Header(), w.Body)
						return
					}
					mu.Lock()
					refused++
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
				}
				if i == n/2 {
					close(half)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-half:
		thaw := srv.Freeze(t)
		// Frozen for a while, and until some callback met the freeze: a
		// loaded machine may leave the senders unscheduled for a while.
		time.Sleep(1500 * time.Millisecond)
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			met := refused > 0
			mu.Unlock()
			if met {
				break
			}
		}
		thaw()
	case <-done: // a sender failed
	}
	<-done
	if refused == 0 {
		t.Fatal("no callback was answered 503 while Redis was frozen: the test shows nothing")
	}
	recs, err := store.Lookup(ctx, nums)
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range recs {
		if rec.Capability != capstore.Capable {
			t.Errorf("number %d acknowledged but recorded as %+v", nums[i], rec)
		}
	}
	jc, err := store.JobCounts(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if jc.Received != n || jc.Capable != n {
		t.Errorf("job counts %+v, want %d received and capable", jc, n)
	}
	t.Logf("%d answers 503 while Redis was frozen; %d duplicates (callbacks written after their 503)", refused, jc.Duplicates)
}
