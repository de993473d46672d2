package jobstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// runningKey is a sorted set of the chunk runs workers hold: the member is
// the run's chunk, a space and the worker's own string for the run, the
// score when the hold lapses (Unix ms on the Redis clock, so that the hosts'
// clocks do not matter). A run whose hold lapsed is a worker's that died
// (SIGKILL, a lost host), and another worker takes it over long before
// asynq's lease on the task (30 s, found by a recoverer that runs every
// minute) gives it back. runningChunksKey maps each chunk to the one run
// that holds it, so that two runs of a chunk never send at once. The hash
// tag keeps both on one slot of a cluster.
const (
	runningKey       = "capcheck:{running}"
	runningChunksKey = "capcheck:{running}:chunks"
)

// A Run is a worker's run of a chunk: at most one run holds a chunk.
type Run struct {
	// Chunk names the chunk (job, generation, index); no spaces.
	Chunk string
	// Member is the worker's own string for the run.
	Member string
}

func (r Run) stored() string { return r.Chunk + " " + r.Member }

// redisNowMS reads the Redis clock in Unix ms.
const redisNowMS = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// dropRun removes the hold m, and its chunk's entry when it is m's.
const dropRun = `
local function drop(m)
  redis.call('ZREM', KEYS[1], m)
  local id = string.match(m, '^(%S+) ')
  if id and redis.call('HGET', KEYS[2], id) == m then redis.call('HDEL', KEYS[2], id) end
end
`

// takeScript holds chunk ARGV[2] for run ARGV[3] for ARGV[1] ms unless
// another run holds it and its hold has not lapsed: 1 when held, else 0.
var takeScript = redis.NewScript(redisNowMS + dropRun + `
local cur = redis.call('HGET', KEYS[2], ARGV[2])
if cur and cur ~= ARGV[3] then
  local s = redis.call('ZSCORE', KEYS[1], cur)
  if s and tonumber(s) > now then return 0 end
  drop(cur)
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[3])
return 1`)

// renewScript renews for ARGV[1] ms the holds ARGV[3:] that are still
// theirs' chunks', then claims up to ARGV[2] lapsed ones: one round trip
// for a worker's tick. It returns the indexes (1-based) of the holds lost
// and the holds claimed.
var renewScript = redis.NewScript(redisNowMS + dropRun + `
local lost = {}
for i = 3, #ARGV do
  local m = ARGV[i]
  local id = string.match(m, '^(%S+) ')
  if redis.call('ZSCORE', KEYS[1], m) and redis.call('HGET', KEYS[2], id) == m then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), m)
  else
    lost[#lost + 1] = i - 2
  end
end
local lapsed = {}
if ARGV[2] ~= '0' then
  lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
  for _, m in ipairs(lapsed) do drop(m) end
end
return {lost, lapsed}`)

// releaseScript drops the hold ARGV[1].
var releaseScript = redis.NewScript(dropRun + `drop(ARGV[1]) return 0`)

// LoadScripts loads into Redis's script cache (every node of a Cluster)
// the scripts a worker runs on the way to a chunk's first request and
// after it: holding the chunk, recording outcomes, releasing the hold. The
// first chunk after Redis started then pays no NOSCRIPT round trip and
// compile for each. Optional: a missing script is loaded when it runs.
func (s *Store) LoadScripts(ctx context.Context) error {
	for _, sc := range []*redis.Script{takeScript, recordScript, releaseScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("loading the job store's scripts: %w", err)
		}
	}
	return nil
}

// TakeRun holds r's chunk for r for ttl from now, unless another run of the
// chunk holds it: it reports whether r holds it. A hold that lapsed is taken.
func (s *Store) TakeRun(ctx context.Context, ttl time.Duration, r Run) (bool, error) {
	n, err := takeScript.Run(ctx, s.rdb, []string{runningKey, runningChunksKey}, ttl.Milliseconds(), r.Chunk, r.stored()).Int()
	if err != nil {
		return false, fmt.Errorf("holding a chunk run: %w", err)
	}
	return n == 1, nil
}

// RenewRuns renews the holds of runs for ttl from now, then removes and
// returns up to n runs whose hold lapsed (each to one caller only), in one
// round trip. lost are the runs whose hold is gone (claimed by another
// worker, or taken by another run of the chunk): they must not send again.
func (s *Store) RenewRuns(ctx context.Context, ttl time.Duration, n int, runs ...Run) (lost []Run, lapsed []Run, err error) {
	args := make([]any, 0, 2+len(runs))
	args = append(args, ttl.Milliseconds(), n)
	for _, r := range runs {
		args = append(args, r.stored())
	}
	v, err := renewScript.Run(ctx, s.rdb, []string{runningKey, runningChunksKey}, args...).Slice()
	if err != nil {
		return nil, nil, fmt.Errorf("renewing chunk runs: %w", err)
	}
	if len(v) != 2 {
		return nil, nil, fmt.Errorf("renewing chunk runs: %d values back, want 2", len(v))
	}
	is, _ := v[0].([]any)
	for _, i := range is {
		if k, ok := i.(int64); ok && k >= 1 && int(k) <= len(runs) {
			lost = append(lost, runs[k-1])
		}
	}
	ms, _ := v[1].([]any)
	for _, m := range ms {
		str, _ := m.(string)
		chunk, member, _ := strings.Cut(str, " ")
		lapsed = append(lapsed, Run{Chunk: chunk, Member: member})
	}
	return lost, lapsed, nil
}

// ClaimLapsedRuns removes and returns up to n runs whose hold lapsed.
func (s *Store) ClaimLapsedRuns(ctx context.Context, n int) ([]Run, error) {
	_, lapsed, err := s.RenewRuns(ctx, 0, n)
	return lapsed, err
}

// ReleaseRun drops the hold of a run that ended.
func (s *Store) ReleaseRun(ctx context.Context, r Run) error {
	if err := releaseScript.Run(ctx, s.rdb, []string{runningKey, runningChunksKey}, r.stored()).Err(); err != nil {
		return fmt.Errorf("releasing a chunk run: %w", err)
	}
	return nil
}

// HeldChunks reports, for each chunk named, whether a run holds it: a hold
// that lapsed counts until a worker claims it (RenewRuns), which takes its
// chunk over.
func (s *Store) HeldChunks(ctx context.Context, chunks ...string) ([]bool, error) {
	if len(chunks) == 0 {
		return nil, nil
	}
	v, err := s.rdb.HMGet(ctx, runningChunksKey, chunks...).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the holds of chunks: %w", err)
	}
	held := make([]bool, len(chunks))
	for i := range min(len(v), len(held)) {
		held[i] = v[i] != nil
	}
	return held, nil
}

// ChunkOpen reports whether chunk i of generation gen of job still wants a
// run: the job exists, is at that generation, not finished, and the chunk
// is not settled. One round trip.
func (s *Store) ChunkOpen(ctx context.Context, job string, gen, i int) (bool, error) {
	if err := ValidateJobID(job); err != nil {
		return false, err
	}
	pipe := s.rdb.Pipeline()
	h := pipe.HMGet(ctx, jobKey(job), fState, fGen)
	done := pipe.SIsMember(ctx, doneKey(job), i)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, wrap("reading", job, err)
	}
	st, _ := h.Val()[0].(string)
	gs, _ := h.Val()[1].(string)
	g, _ := strconv.ParseInt(gs, 10, 64) // none: generation 0, as parseJob reads it
	if st == "" || State(st).Finished() || g != int64(gen) {
		return false, nil
	}
	return !done.Val(), nil
}
