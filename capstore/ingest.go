package capstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Callback is one number's answer as a receiver got it.
type Callback struct {
	// Number is the E.164 number as the integer of its digits.
	Number uint64
	// Capability is Capable, NotCapable or Unknown.
	Capability Capability
	// Raw is the status value as received; kept for Unknown.
	Raw string
	// At is when the callback was received.
	At time.Time
}

// Result is what a callback did.
type Result uint8

// Results.
const (
	// Stored: the first answer for a number a job waits on.
	Stored Result = iota + 1
	// Duplicate: the waiting job already had its answer; the record
	// changes only if the answer differs and is newer.
	Duplicate
	// Unsolicited: no job waits on the number; the record is kept all the
	// same (newer wins).
	Unsolicited
)

// String names the result as the metrics label it: "stored", "duplicate",
// "unsolicited".
func (r Result) String() string {
	switch r {
	case Stored:
		return "stored"
	case Duplicate:
		return "duplicate"
	case Unsolicited:
		return "unsolicited"
	}
	return "unknown"
}

// ingestScript writes callbacks to the records of their numbers and marks
// awaited numbers answered, atomically per number. It returns, per
// callback, the awaiting entries as they were before ("" when none): the
// caller counts the answer for each of their jobs.
//
// KEYS: per bucket its records and awaiting hash. ARGV: per callback, its
// bucket's index, memory field, packed record. A record is replaced by a strictly
// newer one, except that a duplicate of the answer every awaiting job
// already has changes nothing (not even the time).
var ingestScript = redis.NewScript(luaRecords + `
local out = {}
for i = 1, #ARGV, 3 do
  local p = tonumber(ARGV[i]) * 2
  local ck, ak, f, v = KEYS[p - 1], KEYS[p], ARGV[i + 1], ARGV[i + 2]
  local nv = u32(v, 1)
  local of = af(f)
  local aw = redis.call('HGET', ak, of)
  local got, marked = aw ~= false, aw
  if aw and #aw == 8 then -- one job awaits it: the common case
    local b = string.byte(aw, 1)
    if b < 128 then got, marked = false, string.char(b + 128) .. string.sub(aw, 2) end
  elseif aw then
    local parts = {}
    for k = 1, #aw, 8 do
      local b = string.byte(aw, k)
      if b < 128 then got = false b = b + 128 end
      parts[#parts + 1] = string.char(b) .. string.sub(aw, k + 1, k + 7)
    end
    marked = table.concat(parts)
  end
  local s = bucket(ck)
  local pos, found = find(s, f40(f, 1))
  local write = not found
  if found then
    local cv = u32(s, pos + 5)
    write = math.floor(nv / 4) > math.floor(cv / 4) and not (got and cv % 4 == nv % 4)
  end
  if write then put(ck, s, pos, found, f, v) end
  if aw and not got then redis.call('HSET', ak, of, marked) end
  out[#out + 1] = aw or ''
end
return out`)

// jobScript counts answers for one job: the first answer of an entry (a
// bit of the job's bitmap) counts as received and under its capability,
// any later one as a duplicate (one HINCRBY per count a call changes, not
// per answer). It returns, per answer, 1 for the first, 0 for a duplicate,
// -1 when the job's callback record is gone (expired).
//
// KEYS: the job's cb hash, got bitmap, raw hash. ARGV: per answer, the
// entry's index, capability name, raw status value ("" unless unknown).
var jobScript = redis.NewScript(`
local out = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 1, #ARGV, 3 do out[#out + 1] = -1 end
  return out
end
local add, raws = {}, {}
for i = 1, #ARGV, 3 do
  if redis.call('SETBIT', KEYS[2], ARGV[i], 1) == 0 then
    add.received = (add.received or 0) + 1
    add[ARGV[i + 1]] = (add[ARGV[i + 1]] or 0) + 1
    local raw = ARGV[i + 2]
    if raw ~= '' then raws[#raws + 1] = raw end
    out[#out + 1] = 1
  else
    add.duplicates = (add.duplicates or 0) + 1
    out[#out + 1] = 0
  end
end
for f, n in pairs(add) do redis.call('HINCRBY', KEYS[1], f, n) end
for _, raw in ipairs(raws) do
  if redis.call('HEXISTS', KEYS[3], raw) == 0 and redis.call('HLEN', KEYS[3]) >= 100 then raw = '(other)' end
  redis.call('HINCRBY', KEYS[3], raw, 1)
end
return out`)

// Ingest records a batch of callbacks and returns what each did. It takes
// two pipelined round trips whatever the batch's size: one script call per
// hash tag for the records (one in all off Cluster), then one per job
// waiting on some of them. Ingesting a callback again is harmless: it is a
// Duplicate. When Ingest fails, any part of the batch may be recorded;
// ingesting it again completes it.
func (s *Store) Ingest(ctx context.Context, cbs []Callback) ([]Result, error) {
	return s.ingest(ctx, s.evalGroups, cbs)
}

// ingest is Ingest with its writes on cs's connections (nil: the Store's
// client).
func (s *Store) ingest(ctx context.Context, eval evalFunc, cbs []Callback) ([]Result, error) {
	slots := make([]slot, len(cbs))
	for i, cb := range cbs {
		if cb.Number == 0 || cb.Number > MaxNumber || cb.Capability < Capable || cb.Capability > Unknown {
			return nil, fmt.Errorf("callback %d: number %d or capability %d out of range", i, cb.Number, cb.Capability)
		}
		slots[i] = slotOf(cb.Number)
	}
	gs := s.groups(slots, func(g *group, i int) {
		g.args = append(g.args, packRecord(cbs[i].Capability, cbs[i].At, 0))
	})
	replies, err := eval(ctx, ingestScript, gs)
	if err != nil {
		return nil, fmt.Errorf("recording callbacks: %w", err)
	}
	res := make([]Result, len(cbs))
	var answers []answer
	for gi, g := range gs {
		for k, i := range g.items {
			aw, _ := replies[gi][k].(string)
			for e := 0; e+awaitLen <= len(aw); e += awaitLen { // one entry per job awaiting it
				a := decodeAwait(aw[e : e+awaitLen])
				a.pos, a.cap, a.raw = i, cbs[i].Capability, cbs[i].Raw
				answers = append(answers, a)
			}
		}
	}
	firsts, err := s.countAnswers(ctx, eval, answers)
	if err != nil {
		return nil, err
	}
	// Stored when it is the first answer for any of the jobs; Duplicate
	// when every job had it; Unsolicited when no job (alive) awaits it.
	for k, a := range answers {
		switch {
		case firsts[k] == 1:
			res[a.pos] = Stored
		case firsts[k] == 0 && res[a.pos] != Stored:
			res[a.pos] = Duplicate
		}
	}
	for i := range res {
		if res[i] == 0 {
			res[i] = Unsolicited
		}
	}
	return res, nil
}

// answer is an answer for an awaited entry of a job.
type answer struct {
	ordinal uint32
	index   uint32
	pos     int // in the caller's slice
	cap     Capability
	raw     string
}

// An awaiting entry is 8 bytes: the job's ordinal (its top bit set once
// the number is answered) and the number's index in the job, big-endian.
// A number awaited by several jobs at once has one entry per job, one
// after the other in its field (at most maxAwaiting).
const (
	answeredBit = 1 << 31
	awaitLen    = 8
	maxAwaiting = 8
)

func encodeAwait(ordinal, index uint32) string {
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], ordinal)
	binary.BigEndian.PutUint32(b[4:], index)
	return string(b[:])
}

func decodeAwait(v string) answer {
	return answer{
		ordinal: binary.BigEndian.Uint32([]byte(v[:4])) &^ answeredBit,
		index:   binary.BigEndian.Uint32([]byte(v[4:8])),
	}
}

// countAnswers counts answers for their jobs, one script call per job in
// one pipeline (on cs's connections, nil: the Store's client), and returns
// jobScript's reply per answer.
func (s *Store) countAnswers(ctx context.Context, eval evalFunc, answers []answer) ([]int64, error) {
	out := make([]int64, len(answers))
	if len(answers) == 0 {
		return out, nil
	}
	var ords []uint32
	byOrd := map[uint32][]int{}
	for k, a := range answers {
		if _, ok := byOrd[a.ordinal]; !ok {
			ords = append(ords, a.ordinal)
		}
		byOrd[a.ordinal] = append(byOrd[a.ordinal], k)
	}
	ids, err := s.jobIDs(ctx, ords)
	if err != nil {
		return nil, err
	}
	var gs []*group
	var gOrds []uint32
	for _, o := range ords {
		id := ids[o]
		if id == "" {
			for _, k := range byOrd[o] {
				out[k] = -1 // the job is gone
			}
			continue
		}
		g := &group{keys: []string{s.jobCBKey(id), s.jobGotKey(id), s.jobRawKey(id)}}
		for _, k := range byOrd[o] {
			a := answers[k]
			raw := ""
			if a.cap == Unknown {
				raw = clipRaw(a.raw)
			}
			g.args = append(g.args, a.index, a.cap.String(), raw)
		}
		gs, gOrds = append(gs, g), append(gOrds, o)
	}
	replies, err := eval(ctx, jobScript, gs)
	if err != nil {
		return nil, fmt.Errorf("counting callbacks for jobs: %w", err)
	}
	for gi, o := range gOrds {
		for j, k := range byOrd[o] {
			out[k], _ = replies[gi][j].(int64)
		}
	}
	return out, nil
}

// clipRaw bounds a raw status value kept for counting.
func clipRaw(raw string) string {
	const n = 64
	if len(raw) > n {
		return raw[:n]
	}
	return raw
}
