package capstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RegisterJob gives the job its ordinal (a small integer that awaiting
// entries carry instead of the ID) the first time, and returns it. The
// job's callback record starts with the fleet's counts of unsolicited and
// refused callbacks then, so that its summary can say how many came while
// it ran. Calling it again returns the same ordinal.
func (s *Store) RegisterJob(ctx context.Context, job string) (uint32, error) {
	key := s.jobCBKey(job)
	if v, err := s.rdb.HGet(ctx, key, "ordinal").Result(); err == nil {
		o, err := strconv.ParseUint(v, 10, 32)
		return uint32(o), err
	} else if !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("reading job %s callbacks: %w", job, err)
	}
	n, err := s.rdb.Incr(ctx, s.seqKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("numbering job %s: %w", job, err)
	}
	if n >= answeredBit {
		return 0, errors.New("job ordinals exhausted")
	}
	// The ordinal's job is written before any entry can carry it.
	if err := s.rdb.HSet(ctx, s.ordinalsKey(), strconv.FormatInt(n, 10), job).Err(); err != nil {
		return 0, fmt.Errorf("numbering job %s: %w", job, err)
	}
	fleet, err := s.FleetStats(ctx)
	if err != nil {
		return 0, err
	}
	ok, err := s.rdb.HSetNX(ctx, key, "ordinal", n).Result()
	if err != nil {
		return 0, fmt.Errorf("numbering job %s: %w", job, err)
	}
	if !ok { // another process numbered it first
		s.rdb.HDel(ctx, s.ordinalsKey(), strconv.FormatInt(n, 10))
		return s.RegisterJob(ctx, job)
	}
	pipe := s.rdb.Pipeline()
	for _, k := range []string{"unsolicited", "refused", "bad_request"} {
		pipe.HSetNX(ctx, key, "base_"+k, fleet[k])
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("numbering job %s: %w", job, err)
	}
	return uint32(n), nil
}

// jobIDs resolves ordinals to job IDs ("" for a job that is gone).
func (s *Store) jobIDs(ctx context.Context, ords []uint32) (map[uint32]string, error) {
	out := make(map[uint32]string, len(ords))
	var missing []string
	s.mu.Lock()
	for _, o := range ords {
		if id, ok := s.jobs[o]; ok {
			out[o] = id
		} else {
			missing = append(missing, strconv.FormatUint(uint64(o), 10))
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.ordinalsKey(), missing...).Result()
	if err != nil {
		return nil, fmt.Errorf("reading job ordinals: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.jobs) > 10_000 {
		clear(s.jobs) // bounded: jobs come and go over months
	}
	for i, v := range vals {
		o, _ := strconv.ParseUint(missing[i], 10, 32)
		id, _ := v.(string)
		out[uint32(o)] = id
		if id != "" {
			s.jobs[uint32(o)] = id
		}
	}
	return out, nil
}

// Awaited is a number a job waits on, with its index in the job (unique in
// the job, below 2^32; e.g. chunk × chunk size + entry).
type Awaited struct {
	Number uint64
	Index  uint32
}

// luaOthers defines, after luaRecords, others(field, ord): the 8-byte
// entries of an awaiting field but those of the job of ordinal ord (the
// low 31 bits of an entry's first four bytes).
const luaOthers = luaRecords + `
local function others(aw, ord)
  local keep = {}
  for j = 1, #aw, 8 do
    local x = string.sub(aw, j, j + 7)
    if u32(x, 1) % 2147483648 ~= ord then keep[#keep + 1] = x end
  end
  return keep
end
`

// awaitScript registers awaiting entries, next to those of other jobs
// awaiting the same number (the oldest dropped beyond maxAwaiting); a job
// registering a number again replaces its entry. A number whose record is
// at least as new as ARGV[1] (seconds since Epoch: the request was sent
// then) was answered before its entry existed: the entry is written
// answered and the capability is returned for the caller to count; else 0.
//
// KEYS: per bucket its records and awaiting hash. ARGV: since, then per
// number its bucket's index, memory field, entry.
var awaitScript = redis.NewScript(luaOthers + `
local since = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 3 do
  local p = tonumber(ARGV[i]) * 2
  local f, e = ARGV[i + 1], ARGV[i + 2]
  local ord = u32(e, 1)
  local s = bucket(KEYS[p - 1])
  local pos, found = find(s, f40(f, 1))
  local c = 0
  if found then
    local cv = u32(s, pos + 5)
    if math.floor(cv / 4) >= since then
      c = cv % 4 + 1
      e = string.char(string.byte(e, 1) + 128) .. string.sub(e, 2)
    end
  end
  local of = af(f)
  local old = redis.call('HGET', KEYS[p], of)
  if old then
    local keep = others(old, ord)
    while #keep >= ` + strconv.Itoa(maxAwaiting) + ` do table.remove(keep, 1) end
    keep[#keep + 1] = e
    e = table.concat(keep)
  end
  redis.call('HSET', KEYS[p], of, e)
  out[#out + 1] = c
end
return out`)

// Await registers the numbers job (of ordinal ord, from RegisterJob) waits
// on, sent to the API at sentAt. A number answered since sentAt (its
// callback came before this call) is counted for the job at once.
// Registering a number again is harmless. A number awaited by several jobs
// at once is awaited by each (up to maxAwaiting at once; beyond, the oldest
// registration is dropped, and that job gets the capability at finalize,
// from the record, but not the early end): its callback counts for all.
func (s *Store) Await(ctx context.Context, job string, ord uint32, items []Awaited, sentAt time.Time) error {
	if len(items) == 0 {
		return nil
	}
	slots := make([]slot, len(items))
	for i, it := range items {
		slots[i] = slotOf(it.Number)
	}
	gs := s.groups(slots, func(g *group, i int) {
		g.args = append(g.args, encodeAwait(ord, items[i].Index))
	})
	since := seconds(sentAt)
	for _, g := range gs {
		g.args = append([]any{since}, g.args...)
	}
	replies, err := s.evalGroups(ctx, awaitScript, gs)
	if err != nil {
		return fmt.Errorf("job %s: registering awaited numbers: %w", job, err)
	}
	var answers []answer
	for gi, g := range gs {
		for k, i := range g.items {
			if c, _ := replies[gi][k].(int64); c > 0 {
				answers = append(answers, answer{ordinal: ord, index: items[i].Index, pos: i, cap: Capability(c)})
			}
		}
	}
	_, err = s.countAnswers(ctx, s.evalGroups, answers)
	return err
}

// releaseScript deletes the awaiting entries of one job, leaving those of
// other jobs. KEYS: per bucket its records and awaiting hash; ARGV: the
// ordinal, then per number its bucket's index and memory field.
var releaseScript = redis.NewScript(luaOthers + `
local ord = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local k, f = KEYS[tonumber(ARGV[i]) * 2], af(ARGV[i + 1])
  local aw = redis.call('HGET', k, f)
  if aw then
    local keep = others(aw, ord)
    if #keep == 0 then
      redis.call('HDEL', k, f)
    elseif #keep * 8 < #aw then
      redis.call('HSET', k, f, table.concat(keep))
    end
  end
end
return {}`)

// Release deletes the awaiting entries of the job's numbers (those of
// other jobs awaiting the same numbers stay), once the job is finalized.
func (s *Store) Release(ctx context.Context, ord uint32, numbers []uint64) error {
	if len(numbers) == 0 {
		return nil
	}
	slots := make([]slot, len(numbers))
	for i, n := range numbers {
		slots[i] = slotOf(n)
	}
	gs := s.groups(slots, func(*group, int) {})
	for _, g := range gs {
		g.args = append([]any{ord}, g.args...)
	}
	if _, err := s.evalGroups(ctx, releaseScript, gs); err != nil {
		return fmt.Errorf("releasing awaited numbers: %w", err)
	}
	return nil
}

// JobCounts are a job's callbacks so far.
type JobCounts struct {
	Received   int64 `json:"received"`   // numbers answered (first callbacks)
	Duplicates int64 `json:"duplicates"` // later callbacks for answered numbers
	Capable    int64 `json:"capable"`
	NotCapable int64 `json:"not_capable"`
	Unknown    int64 `json:"unknown"`
	// Unsolicited and Refused are the fleet's counts since the job was
	// registered: callbacks for numbers nobody awaited, and requests
	// refused (wrong token, not allowed, bad request).
	Unsolicited int64 `json:"unsolicited"`
	Refused     int64 `json:"refused"`
	// RawUnknown counts the status values seen that were configured as
	// neither capable nor not capable.
	RawUnknown map[string]int64 `json:"unknown_status_values,omitempty"`
}

// JobCounts returns the job's callback counts; zero counts for a job never
// registered.
func (s *Store) JobCounts(ctx context.Context, job string) (JobCounts, error) {
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, s.jobCBKey(job))
	raw := pipe.HGetAll(ctx, s.jobRawKey(job))
	fl := pipe.HGetAll(ctx, s.statsKey())
	if _, err := pipe.Exec(ctx); err != nil {
		return JobCounts{}, fmt.Errorf("reading job %s callbacks: %w", job, err)
	}
	c := parseCounts(h.Val(), "")
	f := parseCounts(fl.Val(), "")
	jc := JobCounts{
		Received: c["received"], Duplicates: c["duplicates"],
		Capable: c[Capable.String()], NotCapable: c[NotCapable.String()], Unknown: c[Unknown.String()],
	}
	if _, ok := c["ordinal"]; ok {
		jc.Unsolicited = f["unsolicited"] - c["base_unsolicited"]
		jc.Refused = f["refused"] + f["bad_request"] - c["base_refused"] - c["base_bad_request"]
	}
	if r := parseCounts(raw.Val(), ""); len(r) > 0 {
		jc.RawUnknown = r
	}
	return jc, nil
}
