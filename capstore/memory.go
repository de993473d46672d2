package capstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// current one. KEYS: per bucket its records and awaiting hash. ARGV: per
// record its bucket's index, field, packed record (Record.Pack).
var rememberScript = redis.NewScript(luaRecords + `
for i = 1, #ARGV, 3 do
  local k, f, v = KEYS[tonumber(ARGV[i]) * 2 - 1], ARGV[i + 1], ARGV[i + 2]
  local s = bucket(k)
  local pos, found = find(s, f40(f, 1))
  if not found or math.floor(u32(v, 1) / 4) > math.floor(u32(s, pos + 5) / 4) then
    put(k, s, pos, found, f, v)
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
		var reason uint16
		if a.Capability == Rejected {
			reason = ids[clipRaw(a.Code)+"\x00"+clipReason(a.Message)]
		}
		g.args = append(g.args, packRecord(a.Capability, a.At, reason))
	})
	if _, err := s.evalGroups(ctx, rememberScript, gs); err != nil {
		return fmt.Errorf("remembering answers: %w", err)
	}
	return nil
}

// forgetScript drops the records of numbers, from their bucket and from
// its string and hash of the layouts before, and returns how many there
// were. KEYS: per bucket its records, old string and old hash. ARGV: per
// number its bucket's index and memory field.
var forgetScript = redis.NewScript(luaRecords + `
local n = 0
for i = 1, #ARGV, 2 do
  local p = tonumber(ARGV[i]) * 3
  local k, f = KEYS[p - 2], ARGV[i + 1]
  local s = bucket(k)
  local pos, found = find(s, f40(f, 1))
  if found then drop(k, s, pos) end
  local of = af(f)
  local os = bucket(KEYS[p - 1])
  local opos, ofound = findSorted(os, math.floor(#os / RL), f40(of, 1))
  if ofound then
    if #os <= RL then redis.call('DEL', KEYS[p - 1])
    else redis.call('SET', KEYS[p - 1], string.sub(os, 1, opos - 1) .. string.sub(os, opos + RL)) end
  end
  if redis.call('HDEL', KEYS[p], of) == 1 or found or ofound then n = n + 1 end
end
return {n}`)

// Forget drops the records of numbers and returns how many there were.
func (s *Store) Forget(ctx context.Context, numbers []uint64) (int64, error) {
	if len(numbers) == 0 {
		return 0, nil
	}
	slots := make([]slot, 0, len(numbers))
	for _, n := range numbers {
		if n != 0 && n <= MaxNumber {
			slots = append(slots, slotOf(n))
		}
	}
	gs := s.groups(slots, func(*group, int) {}, s.memKey, s.oldMemKey, s.oldKey)
	replies, err := s.evalGroups(ctx, forgetScript, gs)
	if err != nil {
		return 0, fmt.Errorf("forgetting numbers: %w", err)
	}
	var n int64
	for _, r := range replies {
		if len(r) > 0 {
			c, _ := r[0].(int64)
			n += c
		}
	}
	return n, nil
}

// bucketBatch is how many buckets one pipelined round trip reads or
// writes when walking the whole memory: 16 hash tags of awaiting buckets,
// 128 of memory buckets.
const bucketBatch = 2048

// eachBatch calls fn with n buckets (of 2^17, or memBuckets) bucketBatch
// at a time, in hash tag order (at), each time with a pipeline that it
// runs after, then calls what fn returned.
func (s *Store) eachBatch(ctx context.Context, n uint32, at func(uint32) uint32, fn func(pipe redis.Pipeliner, bs []uint32) (func() error, error)) error {
	bs := make([]uint32, bucketBatch)
	for first := uint32(0); first < n; first += bucketBatch {
		for i := range bs {
			bs[i] = at(first + uint32(i))
		}
		pipe := s.rdb.Pipeline()
		after, err := fn(pipe, bs)
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

// ForgetAll drops every record (the reasons too, and buckets of the
// layouts before) and returns how many numbers were remembered.
func (s *Store) ForgetAll(ctx context.Context) (int64, error) {
	var total int64
	err := s.eachBatch(ctx, buckets, bucketAt, func(pipe redis.Pipeliner, bs []uint32) (func() error, error) {
		var mems []*redis.StringCmd
		lens := make([]*redis.IntCmd, 0, 2*len(bs))
		for _, b := range bs {
			if b < memBuckets { // the tags' memory buckets
				mems = append(mems, pipe.Get(ctx, s.memKey(b)))
				pipe.Unlink(ctx, s.memKey(b))
			}
			lens = append(lens, pipe.StrLen(ctx, s.oldMemKey(b)), pipe.HLen(ctx, s.oldKey(b)))
			pipe.Unlink(ctx, s.oldMemKey(b), s.oldKey(b))
		}
		return func() error {
			for _, c := range mems {
				total += countRecords(c.Val())
			}
			for i, c := range lens {
				if i%2 == 0 {
					total += c.Val() / recordLen
				} else {
					total += c.Val()
				}
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

// oldPerMem is how many buckets of the layouts before share a memory
// bucket: b mod memBuckets = mb.
const oldPerMem = buckets / memBuckets

// sweepScript drops the records of one memory bucket older than ARGV[1]
// (seconds since Epoch) and returns how many, and how many keys of the
// layouts before it moved into it first (newer wins): the strings and
// hashes of the oldPerMem buckets of 2^17 that map to it, whose fields
// are the low 33 bits of the memory field. KEYS: the bucket's records,
// then those old strings, then those old hashes, each in order of the
// bucket's bits above memBits. A bucket holds about 600 records at 10M
// numbers: each call is short.
var sweepScript = redis.NewScript(luaRecords + `
local before = tonumber(ARGV[1])
local s = bucket(KEYS[1])
local J = (#KEYS - 1) / 2
local moved = redis.call('EXISTS', unpack(KEYS, 2))
local recs = {}
local function each(s, fn)
  local n = sortedLen(s)
  for p = 1, #s - RL + 1, RL do
    local r = string.sub(s, p, p + RL - 1)
    if p > n * RL then
      if string.byte(r, 1) < 128 then break end
      r = string.char(string.byte(r, 1) - 128) .. string.sub(r, 2)
    end
    fn(r)
  end
end
local function old(r, j) return string.char(string.byte(r, 1) + 2 * j) .. string.sub(r, 2) end
local n, tail = 0, false
each(s, function(r)
  recs[#recs + 1] = r
  if math.floor(u32(r, 6) / 4) < before then n = n + 1 end
end)
if #s >= K * RL and string.byte(s, #s - K * RL + 1) >= 128 then tail = true end
if moved > 0 then
  local byf, fs = {}, {}
  local function add(r)
    local f = f40(r, 1)
    local cur = byf[f]
    if not cur then byf[f] = r fs[#fs + 1] = f
    elseif math.floor(u32(r, 6) / 4) > math.floor(u32(cur, 6) / 4) then byf[f] = r end
  end
  for _, r in ipairs(recs) do add(r) end
  for j = 0, J - 1 do
    local os = bucket(KEYS[2 + j])
    for p = 1, #os - RL + 1, RL do add(old(string.sub(os, p, p + RL - 1), j)) end
    local h = redis.call('HGETALL', KEYS[2 + J + j])
    for i = 1, #h, 2 do
      local f, v = h[i], h[i + 1]
      if #v == 4 then v = v .. '\0\0' end
      if #f == 5 and #v == 6 then add(old(f .. v, j)) end
    end
  end
  redis.call('DEL', unpack(KEYS, 2))
  table.sort(fs)
  recs, n = {}, 0
  for _, f in ipairs(fs) do
    recs[#recs + 1] = byf[f]
    if math.floor(u32(byf[f], 6) / 4) < before then n = n + 1 end
  end
end
if n > 0 or moved > 0 then
  local keep = {}
  for _, r in ipairs(recs) do
    if math.floor(u32(r, 6) / 4) >= before then keep[#keep + 1] = r end
  end
  if tail and moved == 0 then table.sort(keep, function(a, b) return f40(a, 1) < f40(b, 1) end) end
  if #keep == 0 then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], table.concat(keep) .. empty(K)) end
end
return {n, moved}`)

// Sweep drops every record received before the cutoff and returns how
// many, and how many keys of the layouts before (strings of 2^17 buckets,
// hashes) it moved into the memory's buckets on the way. It walks the
// memory's buckets with one short script call each, pipelined, so Redis
// serves other clients between them.
func (s *Store) Sweep(ctx context.Context, before time.Time) (dropped, moved int64, err error) {
	if err := sweepScript.Load(ctx, s.rdb).Err(); err != nil {
		return 0, 0, fmt.Errorf("sweeping the memory: %w", err)
	}
	cut := seconds(before)
	err = s.eachBatch(ctx, memBuckets, memBucketAt, func(pipe redis.Pipeliner, bs []uint32) (func() error, error) {
		cmds := make([]*redis.Cmd, 0, len(bs))
		keys := make([]string, 1+2*oldPerMem)
		for _, b := range bs {
			keys[0] = s.memKey(b)
			for j := range uint32(oldPerMem) {
				keys[1+j], keys[1+oldPerMem+j] = s.oldMemKey(b|j<<memBits), s.oldKey(b|j<<memBits)
			}
			cmds = append(cmds, sweepScript.EvalSha(ctx, pipe, slices.Clone(keys), cut))
		}
		return func() error {
			for _, c := range cmds {
				if r, _ := c.Val().([]any); len(r) == 2 {
					n, _ := r[0].(int64)
					m, _ := r[1].(int64)
					dropped, moved = dropped+n, moved+m
				}
			}
			return nil
		}, nil
	})
	if err != nil {
		return dropped, moved, fmt.Errorf("sweeping the memory: %w", err)
	}
	return dropped, moved, nil
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
	for first := uint32(0); first < memBuckets; first += bucketBatch {
		bs := make([]uint32, bucketBatch)
		for i := range bs {
			bs[i] = memBucketAt(first + uint32(i))
		}
		vals, err := s.readBuckets(ctx, bs)
		if err != nil {
			return fmt.Errorf("reading the memory: %w", err)
		}
		for i, v := range vals {
			if err := eachRecord(bs[i], v, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// Bytes returns the memory's size in Redis as MEMORY USAGE counts it (the
// buckets and the reasons), or an error where the server has no MEMORY
// command.
func (s *Store) Bytes(ctx context.Context) (int64, error) {
	var total int64
	first := true
	err := s.eachBatch(ctx, memBuckets, memBucketAt, func(pipe redis.Pipeliner, bs []uint32) (func() error, error) {
		cmds := make([]*redis.IntCmd, 0, len(bs)+2)
		for _, b := range bs {
			cmds = append(cmds, pipe.MemoryUsage(ctx, s.memKey(b), 0))
		}
		if first {
			cmds = append(cmds, pipe.MemoryUsage(ctx, s.reasonByIDKey(), 0), pipe.MemoryUsage(ctx, s.reasonByTextKey(), 0))
			first = false
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

// layoutKey marks a Redis whose memory is known to be in the current
// buckets alone: MoveOldLayout has run to its end there.
func (s *Store) layoutKey() string { return s.prefix + ":memlayout" }

// MoveOldLayout moves a memory written before the current buckets (the
// 2^17 strings, the hashes) into them, once per Redis: a sweep that drops
// nothing, then a mark that it is done. Without it, the first enqueue
// after an upgrade would find the memory empty and send every number
// again. A Redis without a key of those layouts is only marked (a SCAN,
// not a sweep: a fresh Redis's first job starts at once). It is safe to
// run twice at once. moved is the old keys moved.
func (s *Store) MoveOldLayout(ctx context.Context) (moved int64, err error) {
	n, err := s.rdb.Exists(ctx, s.layoutKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("reading the memory's layout: %w", err)
	}
	if n > 0 {
		return 0, nil
	}
	old, err := s.oldLayoutLeft(ctx)
	if err != nil {
		return 0, fmt.Errorf("looking for the memory's old layout: %w", err)
	}
	if old {
		if _, moved, err = s.Sweep(ctx, time.Time{}); err != nil {
			return moved, err
		}
	}
	if err := s.rdb.Set(ctx, s.layoutKey(), "2", 0).Err(); err != nil {
		return moved, fmt.Errorf("marking the memory's layout: %w", err)
	}
	return moved, nil
}

// oldLayoutLeft reports whether a key of the layouts before is in Redis
// (on every master of a Cluster).
func (s *Store) oldLayoutLeft(ctx context.Context) (bool, error) {
	errFound := errors.New("found")
	scan := func(ctx context.Context, c redis.Cmdable) error {
		for _, match := range []string{s.prefix + ":mem:{*", s.prefix + ":cap:{*"} {
			it := c.Scan(ctx, 0, match, 10_000).Iterator()
			if it.Next(ctx) {
				return errFound
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.rdb)
	}
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}
