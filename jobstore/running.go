package jobstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// runningKey is a sorted set of the chunk runs workers hold: the member is
// the worker's own string for the run, the score when the hold lapses (Unix
// ms on the Redis clock, so that the hosts' clocks do not matter). A worker
// renews its holds every second; a run whose hold lapsed is a worker's that
// died (SIGKILL, a lost host), and another worker takes it over long before
// asynq's lease on the task (30 s, found by a recoverer that runs every
// minute) gives it back.
const runningKey = "capcheck:running"

// redisNowMS reads the Redis clock in Unix ms.
const redisNowMS = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// holdScript holds the runs ARGV[3:] for ARGV[1] ms, then claims up to
// ARGV[2] lapsed ones: one round trip for a worker's tick.
var holdScript = redis.NewScript(redisNowMS + `
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
if ARGV[2] == '0' then return {} end
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(lapsed) do redis.call('ZREM', KEYS[1], m) end
return lapsed`)

// HoldRuns holds the runs for ttl from now, renewing holds already there.
func (s *Store) HoldRuns(ctx context.Context, ttl time.Duration, runs ...string) error {
	if len(runs) == 0 {
		return nil
	}
	_, err := s.holdAndClaim(ctx, ttl, 0, runs)
	return err
}

// HoldAndClaimRuns holds the runs as HoldRuns does, then removes and returns
// up to n runs whose hold lapsed, in one round trip: each is returned to
// one caller only.
func (s *Store) HoldAndClaimRuns(ctx context.Context, ttl time.Duration, n int, runs ...string) ([]string, error) {
	return s.holdAndClaim(ctx, ttl, n, runs)
}

// ClaimLapsedRuns removes and returns up to n runs whose hold lapsed.
func (s *Store) ClaimLapsedRuns(ctx context.Context, n int) ([]string, error) {
	return s.holdAndClaim(ctx, 0, n, nil)
}

func (s *Store) holdAndClaim(ctx context.Context, ttl time.Duration, n int, runs []string) ([]string, error) {
	args := make([]any, 0, 2+len(runs))
	args = append(args, ttl.Milliseconds(), n)
	for _, r := range runs {
		args = append(args, r)
	}
	lapsed, err := holdScript.Run(ctx, s.rdb, []string{runningKey}, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("holding chunk runs: %w", err)
	}
	return lapsed, nil
}

// ReleaseRun drops the hold of a run that ended.
func (s *Store) ReleaseRun(ctx context.Context, run string) error {
	if err := s.rdb.ZRem(ctx, runningKey, run).Err(); err != nil {
		return fmt.Errorf("releasing a chunk run: %w", err)
	}
	return nil
}
