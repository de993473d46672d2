package capstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Answer is an answer to remember for a number: a capability, or the API's
// rejection of the number with its code and message.
type Answer struct {
	Number     uint64
	Capability Capability // Capable, NotCapable, Unknown or Rejected
	Code       string     // Rejected: the API's code
	Message    string     // Rejected: the API's message
	At         time.Time
}

// Reason is the API's code and message of a rejection.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// A rejection's code and message are kept once, by reference: the two
// hashes of the reasons map a reference to "code\x00message" and back. A
// record carries the 2-byte reference. References are bounded: past
// maxReasons distinct reasons, new ones share otherReason.
const (
	maxReasons  = 65_000
	otherReason = 65_535
)

func (s *Store) reasonByIDKey() string   { return s.prefix + ":{capreasons}:byid" }
func (s *Store) reasonByTextKey() string { return s.prefix + ":{capreasons}:bytext" }

// reasonScript returns the reference of each reason, numbering new ones.
// KEYS: byid, bytext. ARGV: max, other, then the reasons' texts.
var reasonScript = redis.NewScript(`
local out = {}
for i = 3, #ARGV do
  local id = redis.call('HGET', KEYS[2], ARGV[i])
  if not id then
    local n = redis.call('HLEN', KEYS[1]) + 1
    if n > tonumber(ARGV[1]) then
      id = ARGV[2]
      redis.call('HSETNX', KEYS[1], id, '(other)\0')
    else
      id = tostring(n)
      redis.call('HSET', KEYS[1], id, ARGV[i])
      redis.call('HSET', KEYS[2], ARGV[i], id)
    end
  end
  out[#out + 1] = tonumber(id)
end
return out`)

// reasonIDs returns the reference of each rejection's reason, in one round
// trip (none when there is no rejection).
func (s *Store) reasonIDs(ctx context.Context, ans []Answer) (map[string]uint16, error) {
	ids := map[string]uint16{}
	var texts []any
	for _, a := range ans {
		if a.Capability != Rejected {
			continue
		}
		t := clipRaw(a.Code) + "\x00" + clipReason(a.Message)
		if _, ok := ids[t]; !ok {
			ids[t] = 0
			texts = append(texts, t)
		}
	}
	if len(texts) == 0 {
		return ids, nil
	}
	v, err := reasonScript.Run(ctx, s.rdb, []string{s.reasonByIDKey(), s.reasonByTextKey()},
		append([]any{maxReasons, otherReason}, texts...)...).Slice()
	if err != nil {
		return nil, fmt.Errorf("recording rejection reasons: %w", err)
	}
	for i, t := range texts {
		n, _ := v[i].(int64)
		ids[t.(string)] = uint16(n)
	}
	return ids, nil
}

func clipReason(m string) string {
	const n = 200
	if len(m) > n {
		return m[:n]
	}
	return m
}

// Reasons returns every rejection reason by reference.
func (s *Store) Reasons(ctx context.Context) (map[uint16]Reason, error) {
	h, err := s.rdb.HGetAll(ctx, s.reasonByIDKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("reading rejection reasons: %w", err)
	}
	out := make(map[uint16]Reason, len(h))
	for k, v := range h {
		id, err := strconv.ParseUint(k, 10, 16)
		if err != nil {
			continue
		}
		code, msg, _ := strings.Cut(v, "\x00")
		out[uint16(id)] = Reason{Code: code, Message: msg}
	}
	return out, nil
}

// RestoreReasons puts rejection reasons back under their references, into
// a store that has none yet (a fresh embedded Redis), so that records kept
// elsewhere with those references (the embedded run's file) read right,
// and new reasons are numbered after them.
func (s *Store) RestoreReasons(ctx context.Context, reasons map[uint16]Reason) error {
	if len(reasons) == 0 {
		return nil
	}
	byID := make(map[string]any, len(reasons))
	byText := make(map[string]any, len(reasons))
	for id, r := range reasons {
		t := r.Code + "\x00" + r.Message
		byID[strconv.Itoa(int(id))], byText[t] = t, strconv.Itoa(int(id))
	}
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, s.reasonByIDKey(), byID)
	pipe.HSet(ctx, s.reasonByTextKey(), byText)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("restoring rejection reasons: %w", err)
	}
	return nil
}

// rememberScript writes records, a strictly newer one replacing the
// current one. KEYS: cap, await pairs. ARGV: per record its pair index,
// field, packed record.
var rememberScript = redis.NewScript(`
local function u32(s) local a, b, c, d = string.byte(s, 1, 4) return ((a * 256 + b) * 256 + c) * 256 + d end
for i = 1, #ARGV, 3 do
  local k, f, v = KEYS[tonumber(ARGV[i]) * 2 - 1], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.call('HGET', k, f)
  if not cur or math.floor(u32(v) / 4) > math.floor(u32(cur) / 4) then
    redis.call('HSET', k, f, v)
  end
end
return {}`)

// Remember records answers in the memory: one round trip for the reasons
// of rejections, then one pipelined script call per hash tag (one off
// Cluster). A newer answer replaces an older one, never the reverse, so
// remembering again is harmless.
func (s *Store) Remember(ctx context.Context, ans []Answer) error {
	if len(ans) == 0 {
		return nil
	}
	slots := make([]slot, len(ans))
	for i, a := range ans {
		if a.Number == 0 || a.Number > MaxNumber || a.Capability < Capable || a.Capability > Rejected {
			return fmt.Errorf("answer %d: number %d or capability %d out of range", i, a.Number, a.Capability)
		}
		slots[i] = slotOf(a.Number)
	}
	ids, err := s.reasonIDs(ctx, ans)
	if err != nil {
		return err
	}
	gs := s.groups(slots, func(g *group, i int) {
		a := ans[i]
		if a.Capability == Rejected {
			g.args = append(g.args, packRejection(a.At, ids[clipRaw(a.Code)+"\x00"+clipReason(a.Message)]))
		} else {
			g.args = append(g.args, packRecord(a.Capability, a.At))
		}
	})
	if _, err := s.evalGroups(ctx, rememberScript, gs); err != nil {
		return fmt.Errorf("remembering answers: %w", err)
	}
	return nil
}

// Forget drops the records of numbers and returns how many there were.
func (s *Store) Forget(ctx context.Context, numbers []uint64) (int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(numbers))
	for i, n := range numbers {
		sl := slotOf(n)
		cmds[i] = pipe.HDel(ctx, s.capKey(sl.bucket), sl.field)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("forgetting numbers: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// bucketBatch is how many buckets one pipelined round trip reads or
// writes when walking the whole memory.
const bucketBatch = 2048

// eachBatch calls fn with pipelines of bucketBatch buckets, in order.
func (s *Store) eachBatch(ctx context.Context, fn func(pipe redis.Pipeliner, first, end uint32) (func() error, error)) error {
	for first := uint32(0); first < buckets; first += bucketBatch {
		pipe := s.rdb.Pipeline()
		after, err := fn(pipe, first, min(first+bucketBatch, buckets))
		if err != nil {
			return err
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if err := after(); err != nil {
			return err
		}
	}
	return nil
}

// ForgetAll drops every record (the reasons too) and returns how many
// numbers were remembered.
func (s *Store) ForgetAll(ctx context.Context) (int64, error) {
	var total int64
	err := s.eachBatch(ctx, func(pipe redis.Pipeliner, first, end uint32) (func() error, error) {
		lens := make([]*redis.IntCmd, 0, end-first)
		for b := first; b < end; b++ {
			lens = append(lens, pipe.HLen(ctx, s.capKey(b)))
			pipe.Unlink(ctx, s.capKey(b))
		}
		return func() error {
			for _, c := range lens {
				total += c.Val()
			}
			return nil
		}, nil
	})
	if err != nil {
		return total, fmt.Errorf("forgetting every number: %w", err)
	}
	if err := s.rdb.Unlink(ctx, s.reasonByIDKey(), s.reasonByTextKey()).Err(); err != nil {
		return total, fmt.Errorf("forgetting rejection reasons: %w", err)
	}
	return total, nil
}

// sweepScript drops the fields of one bucket older than ARGV[1] (seconds
// since Epoch) and returns how many. A bucket holds at most about a
// hundred fields: each call is short.
var sweepScript = redis.NewScript(`
local function u32(s) local a, b, c, d = string.byte(s, 1, 4) return ((a * 256 + b) * 256 + c) * 256 + d end
local before = tonumber(ARGV[1])
local h = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #h, 2 do
  if math.floor(u32(h[i + 1]) / 4) < before then
    redis.call('HDEL', KEYS[1], h[i])
    n = n + 1
  end
end
return n`)

// Sweep drops every record received before the cutoff and returns how many.
// It walks the buckets with one short script call each, pipelined, so
// Redis serves other clients between them.
func (s *Store) Sweep(ctx context.Context, before time.Time) (int64, error) {
	if err := sweepScript.Load(ctx, s.rdb).Err(); err != nil {
		return 0, fmt.Errorf("sweeping the memory: %w", err)
	}
	cut := seconds(before)
	var total int64
	err := s.eachBatch(ctx, func(pipe redis.Pipeliner, first, end uint32) (func() error, error) {
		cmds := make([]*redis.Cmd, 0, end-first)
		for b := first; b < end; b++ {
			cmds = append(cmds, sweepScript.EvalSha(ctx, pipe, []string{s.capKey(b)}, cut))
		}
		return func() error {
			for _, c := range cmds {
				n, _ := c.Val().(int64)
				total += n
			}
			return nil
		}, nil
	})
	if err != nil {
		return total, fmt.Errorf("sweeping the memory: %w", err)
	}
	return total, nil
}

func (s *Store) sweepLockKey() string { return s.prefix + ":capsweep" }

// SweepDue reports whether a sweep should run now, at most once per
// interval across the fleet: the first caller in an interval gets true.
func (s *Store) SweepDue(ctx context.Context, interval time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.sweepLockKey(), time.Now().UTC().Format(time.RFC3339), interval).Result()
	if err != nil {
		return false, fmt.Errorf("scheduling the memory's sweep: %w", err)
	}
	return ok, nil
}

// Each calls fn for every remembered number, bucket by bucket (in no
// useful order), reading bucketBatch buckets per round trip: the heap holds
// one batch at a time.
func (s *Store) Each(ctx context.Context, fn func(number uint64, r Record) error) error {
	return s.eachBatch(ctx, func(pipe redis.Pipeliner, first, end uint32) (func() error, error) {
		cmds := make([]*redis.MapStringStringCmd, 0, end-first)
		for b := first; b < end; b++ {
			cmds = append(cmds, pipe.HGetAll(ctx, s.capKey(b)))
		}
		return func() error {
			for i, c := range cmds {
				if err := eachField(first+uint32(i), c.Val(), fn); err != nil {
					return err
				}
			}
			return nil
		}, nil
	})
}

// eachField calls fn for every record of bucket b, read as h.
func eachField(b uint32, h map[string]string, fn func(number uint64, r Record) error) error {
	for f, v := range h {
		n, err := numberOf(b, f)
		if err != nil {
			return err
		}
		r, err := unpackRecord(v)
		if err != nil {
			return fmt.Errorf("number %s: %w", Digits(n), err)
		}
		if err := fn(n, r); err != nil {
			return err
		}
	}
	return nil
}

// Bytes returns the memory's size in Redis as MEMORY USAGE counts it (the
// buckets and the reasons), or an error where the server has no MEMORY
// command.
func (s *Store) Bytes(ctx context.Context) (int64, error) {
	var total int64
	err := s.eachBatch(ctx, func(pipe redis.Pipeliner, first, end uint32) (func() error, error) {
		cmds := make([]*redis.IntCmd, 0, end-first+2)
		for b := first; b < end; b++ {
			cmds = append(cmds, pipe.MemoryUsage(ctx, s.capKey(b), 0))
		}
		if first == 0 {
			cmds = append(cmds, pipe.MemoryUsage(ctx, s.reasonByIDKey(), 0), pipe.MemoryUsage(ctx, s.reasonByTextKey(), 0))
		}
		return func() error {
			for _, c := range cmds {
				if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
					return err
				}
				total += c.Val()
			}
			return nil
		}, nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring the memory: %w", err)
	}
	return total, nil
}
