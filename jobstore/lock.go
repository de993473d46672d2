package jobstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrLocked is returned by Lock when another process holds the job.
var ErrLocked = errors.New("job is held by another process")

// Lock is a job held by one enqueue or run process, so that two overlapping
// runs of the same nightly command do not work on one job at once. It expires
// when its holder dies without releasing it.
type Lock struct {
	s     *Store
	job   string
	owner string
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

var refreshLockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)

var releaseLockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Lock takes the job for owner (e.g. "host:pid"), refreshing it every ttl/3
// until Release. When another owner holds it, the error wraps ErrLocked and
// names the holder.
func (s *Store) Lock(ctx context.Context, job, owner string, ttl time.Duration) (*Lock, error) {
	ok, err := s.rdb.SetNX(ctx, lockKey(job), owner, ttl).Result()
	if err != nil {
		return nil, wrap("locking", job, err)
	}
	if !ok {
		holder, _ := s.rdb.Get(ctx, lockKey(job)).Result()
		return nil, fmt.Errorf("job %s: %w (%s)", job, ErrLocked, holder)
	}
	l := &Lock{s: s, job: job, owner: owner, stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				rctx, cancel := context.WithTimeout(context.Background(), ttl/3)
				_ = refreshLockScript.Run(rctx, s.rdb, []string{lockKey(job)}, owner, ttl.Milliseconds()).Err()
				cancel()
			}
		}
	}()
	return l, nil
}

// Release gives the job up. Releasing twice is harmless.
func (l *Lock) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		err = releaseLockScript.Run(ctx, l.s.rdb, []string{lockKey(l.job)}, l.owner).Err()
	})
	return err
}
