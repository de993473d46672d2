package jobstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// AwaitingCallbacks: every chunk is settled and the job waits, at most its
// callback wait, for the provider's callbacks of its accepted numbers
// before it is finalized.
const AwaitingCallbacks State = "awaiting_callbacks"

// Job record fields of the callback wait.
const (
	fCallbackWait = "cb_wait"     // ms; 0 or absent: the job waits for no callbacks
	fAwaitUntil   = "await_until" // ms: when the wait ends at the latest
)

// awaitingKey lists the jobs awaiting callbacks, scored by the end of their
// wait (ms), for the workers' watch.
const awaitingKey = "capcheck:awaiting"

// SetCallbackWait records how long the job waits for callbacks after its
// last API answer (0: it does not wait). Enqueue sets it before any chunk
// is enqueued.
func (s *Store) SetCallbackWait(ctx context.Context, job string, d time.Duration) error {
	if err := s.rdb.HSet(ctx, jobKey(job), fCallbackWait, d.Milliseconds()).Err(); err != nil {
		return wrap("setting the callback wait of", job, err)
	}
	return nil
}

var beginAwaitScript = redis.NewScript(`
if (redis.call('HGET', KEYS[1], 'gen') or '0') ~= ARGV[1] then return 0 end
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'awaiting_callbacks' then return 1 end
if st ~= 'enqueued' then return 0 end
if redis.call('SCARD', KEYS[2]) < tonumber(redis.call('HGET', KEYS[1], 'chunks')) then return 0 end
redis.call('HSET', KEYS[1], 'state', 'awaiting_callbacks', 'await_until', ARGV[2], 'await_at', ARGV[3])
return 1`)

// BeginAwait moves generation gen of a job whose chunks are all settled to
// AwaitingCallbacks, until now plus its callback wait, and lists it for the
// workers' watch (AwaitingJobs). It reports false when the job is not in
// that position (another generation, not every chunk settled, finalized).
// Calling it again is harmless.
func (s *Store) BeginAwait(ctx context.Context, job string, gen int, wait time.Duration) (bool, error) {
	until := s.now().Add(wait).UnixMilli()
	// Listed first: a job awaiting callbacks is always on the list (a
	// listed job that is not awaiting is dropped by the watch).
	if err := s.rdb.ZAddNX(ctx, awaitingKey, redis.Z{Score: float64(until), Member: job}).Err(); err != nil {
		return false, wrap("listing as awaiting callbacks", job, err)
	}
	r, err := beginAwaitScript.Run(ctx, s.rdb, []string{jobKey(job), doneKey(job)}, gen, until, msOf(s.now())).Int()
	if err != nil {
		return false, wrap("awaiting callbacks of", job, err)
	}
	return r == 1, nil
}

// AwaitingJobs returns up to n jobs listed as awaiting callbacks.
func (s *Store) AwaitingJobs(ctx context.Context, n int) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, awaitingKey, 0, int64(n-1)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("listing jobs awaiting callbacks: %w", err)
	}
	return ids, nil
}

// Unlist takes the job off the list of jobs awaiting callbacks.
func (s *Store) Unlist(ctx context.Context, job string) error {
	return s.rdb.ZRem(ctx, awaitingKey, job).Err()
}

func parseWait(h map[string]string) (wait time.Duration, until time.Time) {
	ms, _ := strconv.ParseInt(h[fCallbackWait], 10, 64)
	u, _ := strconv.ParseInt(h[fAwaitUntil], 10, 64)
	if u > 0 {
		until = time.UnixMilli(u).UTC()
	}
	return time.Duration(ms) * time.Millisecond, until
}
