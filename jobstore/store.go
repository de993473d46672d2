package jobstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotFound is returned for a job ID that has no record.
var ErrNotFound = errors.New("no such job")

// ErrSpecMismatch is returned by CreateJob when the ID is taken by a job of
// another input or other options.
var ErrSpecMismatch = errors.New("job exists with another input or options")

// Store reads and writes jobs in Redis. It is safe for concurrent use.
type Store struct {
	rdb         redis.UniversalClient
	now         func() time.Time
	onRecord    func(job string, r Recorded) error
	replicaWait time.Duration // see WithReplicaWait
	limit       string        // the fleet's rate, noted in the series; "" when unknown
	limitRate   float64       // the same as a number
	layouts     layouts
}

// Option is an optional setting of a Store, for New.
type Option func(*Store)

// WithClock makes the store take the time (of calls, of state changes) from
// now. Defaults to time.Now.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Recorded is what one Record (Outcome set) or Add (Outcome nil) took.
type Recorded struct {
	Chunk    int
	Gen      int
	Outcome  *Outcome
	Counters Counters
	At       time.Time // the store's time of it
	// Limit is the fleet limit the store notes in the job's series
	// (SetFleetLimit); 0 when unknown.
	Limit float64
}

// OnRecord makes the store call fn with what each Record and Add took, once
// Redis took it; an error of fn is Record's or Add's. It lets what is recorded
// outlive a Redis that does not persist. fn must be safe for concurrent use.
func OnRecord(fn func(job string, r Recorded) error) Option {
	return func(s *Store) { s.onRecord = fn }
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, opts ...Option) *Store {
	s := &Store{rdb: rdb, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// RecordHooked reports whether the store has an OnRecord hook: a record
// then also waits for it (a journal's write and sync, in embedded mode).
func (s *Store) RecordHooked() bool { return s.onRecord != nil }

// recorded passes r to the OnRecord hook, if any.
func (s *Store) recorded(job string, r Recorded) error {
	if s.onRecord == nil {
		return nil
	}
	r.Limit = s.limitRate
	if err := s.onRecord(job, r); err != nil {
		return fmt.Errorf("job %s: %w", job, err)
	}
	return nil
}

// Redis returns the client the store uses.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Keys. The job ID is the hash tag of the job's record and of what its
// scripts touch together with it (the done set). What the workers record
// for a chunk is under its group's tag (groups.go). The chunk input blobs
// and the rejects, read and written one key at a time by no script, each
// have a hash tag of their own (spreadTag). So on a Redis Cluster a job's
// bytes spread evenly over the masters.
const jobsKey = "capcheck:jobs"

func jobKey(id string) string { return "capcheck:job:{" + id + "}" }
func chunkKey(id string, i int) string {
	return "capcheck:job:{" + spreadTag(id, "c", i) + "}:chunk"
}
func rejectsBlobKey(id string, k int) string {
	return "capcheck:job:{" + spreadTag(id, "r", k) + "}:rejects"
}

// Keys of an earlier layout, read when the new one has nothing (a job
// enqueued before an upgrade) and expired with the job.
func oldChunkKey(id string, i int) string { return jobKey(id) + ":chunk:" + strconv.Itoa(i) }
func doneKey(id string) string            { return jobKey(id) + ":done" }
func rejectsKey(id string) string         { return jobKey(id) + ":rejects" }
func lockKey(id string) string            { return jobKey(id) + ":lock" }
func msOf(t time.Time) string             { return strconv.FormatInt(t.UnixMilli(), 10) }
func wrap(op, id string, err error) error { return fmt.Errorf("%s job %s: %w", op, id, err) }

// Keys of chunk i of a job of k chunks a group, and of group g's per-second
// request counts (g < 0: the job's own).
func outKey(id string, k, i int) string {
	return groupKey(id, groupOf(i, k)) + ":out:" + strconv.Itoa(i)
}
func settledKey(id string, k, i int) string {
	return groupKey(id, groupOf(i, k)) + ":settled:" + strconv.Itoa(i)
}
func rpsKey(id string, g int) string { return groupKey(id, g) + ":rps" }

var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[3] or redis.call('HGET', KEYS[1], 'chunk_size') ~= ARGV[4] then
    return -1
  end
  return 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'input', ARGV[2], 'fingerprint', ARGV[3], 'chunk_size', ARGV[4],
  'state', 'enqueuing', 'gen', '0', 'created_at', ARGV[5], 'group_chunks', ARGV[6])
return 1`)

// CreateJob creates the record of spec.ID in state Enqueuing, or returns the
// existing one (created false) when it has the same fingerprint and chunk size.
func (s *Store) CreateJob(ctx context.Context, spec Spec) (*Job, bool, error) {
	if err := ValidateJobID(spec.ID); err != nil {
		return nil, false, err
	}
	now := s.now()
	r, err := createScript.Run(ctx, s.rdb, []string{jobKey(spec.ID)},
		spec.ID, spec.Input, spec.Fingerprint, spec.ChunkSize, msOf(now), GroupChunks).Int()
	if err != nil {
		return nil, false, wrap("creating", spec.ID, err)
	}
	if r < 0 {
		return nil, false, fmt.Errorf("job %s: %w", spec.ID, ErrSpecMismatch)
	}
	// The job list lives in a slot of its own (a Redis Cluster may put it on
	// another master than the job): listed apart from the record, again on
	// a resume, so a crash between the two leaves no job unlisted.
	if err := s.rdb.ZAddNX(ctx, jobsKey, redis.Z{Score: float64(now.UnixMilli()), Member: spec.ID}).Err(); err != nil {
		return nil, false, wrap("listing", spec.ID, err)
	}
	j, err := s.Job(ctx, spec.ID)
	return j, r == 1, err
}

// backdateScript sets the creation time of a job to ARGV[1] (Unix ms) when
// that is earlier.
var backdateScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'created_at'))
if cur and tonumber(ARGV[1]) < cur then redis.call('HSET', KEYS[1], 'created_at', ARGV[1]) end
return 0`)

// Backdate makes job id created at t when t is earlier than its record
// says: a job resumed from a journal began with the run that wrote it.
// A zero t changes nothing.
func (s *Store) Backdate(ctx context.Context, id string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if err := backdateScript.Run(ctx, s.rdb, []string{jobKey(id)}, msOf(t)).Err(); err != nil {
		return wrap("backdating", id, err)
	}
	s.layouts.forget(id) // its series count from the new creation time
	return nil
}

// Job returns the record of job id with its counts, or ErrNotFound. An id
// that is not a valid job ID (a forged task's, say) is refused before it
// names a key. It costs two round trips: the record, then the counts of
// its groups in one pipeline.
func (s *Store) Job(ctx context.Context, id string) (*Job, error) {
	j, err := s.record(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.addGroups(ctx, j); err != nil {
		return nil, err
	}
	return j, nil
}

// Head returns the record of job id as Job does but without the counts the
// workers add (Counters and StartedAt are zero), in one round trip whatever
// the job's size: for a caller that needs its state, generation or stop
// flag.
func (s *Store) Head(ctx context.Context, id string) (*Job, error) {
	j, err := s.record(ctx, id)
	if err != nil {
		return nil, err
	}
	j.Counters, j.StartedAt = Counters{}, time.Time{}
	return j, nil
}

// record reads the job record and its done set.
func (s *Store) record(ctx context.Context, id string) (*Job, error) {
	if err := ValidateJobID(id); err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, jobKey(id))
	n := pipe.SCard(ctx, doneKey(id))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrap("reading", id, err)
	}
	if len(h.Val()) == 0 {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	j := parseJob(h.Val())
	j.ID = id // the key's, not the record's field: it names files and keys
	j.ChunksDone = int(n.Val())
	return j, nil
}

// ListJobs returns up to n jobs, newest first.
func (s *Store) ListJobs(ctx context.Context, n int) ([]*Job, error) {
	ids, err := s.rdb.ZRevRange(ctx, jobsKey, 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	jobs := make([]*Job, 0, len(ids))
	for _, id := range ids {
		if ValidateJobID(id) != nil {
			continue // not written by capcheck: it names no job
		}
		j, err := s.Job(ctx, id)
		if errors.Is(err, ErrNotFound) {
			// Expired (see Expire): forget it.
			_ = s.rdb.ZRem(ctx, jobsKey, id).Err()
			continue
		}
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// PutChunk stores the entries of chunk i. Storing the same chunk again is harmless.
func (s *Store) PutChunk(ctx context.Context, job string, i int, entries []Entry) error {
	b, err := EncodeChunk(entries)
	if err != nil {
		return fmt.Errorf("job %s chunk %d: %w", job, i, err)
	}
	key := chunkKey(job, i)
	if s.replicaWait > 0 {
		if s.replicated(ctx, key, func(p redis.Pipeliner) { p.Set(ctx, key, b, 0) }) == nil {
			return nil
		}
	}
	if err := s.rdb.Set(ctx, key, b, 0).Err(); err != nil {
		return fmt.Errorf("storing job %s chunk %d: %w", job, i, err)
	}
	return nil
}

// Chunk returns the entries of chunk i.
func (s *Store) Chunk(ctx context.Context, job string, i int) ([]Entry, error) {
	b, err := s.rdb.Get(ctx, chunkKey(job, i)).Bytes()
	return s.decodeChunkBlob(ctx, job, i, b, err)
}

// decodeChunkBlob decodes what GET of chunk i's blob answered, reading the
// blob of the layout before when there is none.
func (s *Store) decodeChunkBlob(ctx context.Context, job string, i int, b []byte, err error) ([]Entry, error) {
	if errors.Is(err, redis.Nil) {
		b, err = s.rdb.Get(ctx, oldChunkKey(job, i)).Bytes()
	}
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("job %s chunk %d: %w", job, i, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading job %s chunk %d: %w", job, i, err)
	}
	e, err := DecodeChunk(b)
	if err != nil {
		return nil, fmt.Errorf("job %s chunk %d: %w", job, i, err)
	}
	return e, nil
}

// SetChunksEnqueued records that chunks [0, n) are stored and enqueued.
func (s *Store) SetChunksEnqueued(ctx context.Context, job string, n int) error {
	return s.rdb.HSet(ctx, jobKey(job), fChunksEnq, n).Err()
}

// ChunkDone reports whether chunk i is settled.
func (s *Store) ChunkDone(ctx context.Context, job string, i int) (bool, error) {
	return s.rdb.SIsMember(ctx, doneKey(job), i).Result()
}

// PutRejects stores blob k of the job's rejects: CSV lines "row,input,reason"
// without header. Blobs are numbered from 0 in row order.
func (s *Store) PutRejects(ctx context.Context, job string, k int, blob []byte) error {
	packed, err := packRejects(blob)
	if err != nil {
		return fmt.Errorf("packing job %s rejects %d: %w", job, k, err)
	}
	return s.rdb.Set(ctx, rejectsBlobKey(job, k), packed, 0).Err()
}

// Rejects calls fn with each stored blob of rejects, in row order.
func (s *Store) Rejects(ctx context.Context, job string, blobs int, fn func([]byte) error) error {
	for k := range blobs {
		b, err := s.rdb.Get(ctx, rejectsBlobKey(job, k)).Bytes()
		if errors.Is(err, redis.Nil) {
			b, err = s.rdb.HGet(ctx, rejectsKey(job), strconv.Itoa(k)).Bytes()
		}
		if err == nil {
			b, err = unpackRejects(b)
		}
		if err != nil {
			return fmt.Errorf("reading job %s rejects %d: %w", job, k, err)
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// allDoneLua defines all_done(), true when every chunk of the job is settled:
// the one statement of that fact, for the scripts that need it. Their KEYS
// start with the job record and its done set.
const allDoneLua = `
local function all_done()
  local n = redis.call('HGET', KEYS[1], 'chunks')
  return n ~= false and redis.call('SCARD', KEYS[2]) >= tonumber(n)
end
`

// doneScript is a script that may call all_done().
func doneScript(body string) *redis.Script { return redis.NewScript(allDoneLua + body) }

var finishEnqueueScript = doneScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'enqueuing' then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  st = 'enqueued'
end
if (st == 'enqueued' or st == 'finalizing') and all_done() then return 1 end
return 0`)

// FinishEnqueue moves the job from Enqueuing to Enqueued with its counts. It
// reports whether every chunk is already settled, in which case the caller
// enqueues the finalize task (the workers never saw a last chunk to do it).
func (s *Store) FinishEnqueue(ctx context.Context, job string, c Counts, chunks, rejectBlobs int) (bool, error) {
	args := []any{
		fState, string(Enqueued), fEnqueued, msOf(s.now()),
		fRows, c.Rows, fValid, c.Valid, fInvalid, c.Invalid, fMissing, c.Missing,
		fMalformed, c.Malformed, fDuplicates, c.Duplicates, fCached, c.Cached, fCachedRejected, c.CachedRejected,
		fChunks, chunks, fChunksEnq, chunks, fRejectBlobs, rejectBlobs,
	}
	r, err := finishEnqueueScript.Run(ctx, s.rdb, []string{jobKey(job), doneKey(job)}, args...).Int()
	if err != nil {
		return false, wrap("finishing enqueue of", job, err)
	}
	return r == 1, nil
}

// Outcomes returns what has been recorded for chunk i, in order.
func (s *Store) Outcomes(ctx context.Context, job string, i int) ([]Outcome, error) {
	l, err := s.layoutOf(ctx, job)
	if err != nil && !errors.Is(err, errNoJob) {
		return nil, err
	}
	raw, err := s.rdb.LRange(ctx, outKey(job, l.k, i), 0, -1).Result()
	return decodeOutcomeList(job, i, raw, err)
}

// decodeOutcomeList decodes what LRANGE of chunk i's outcomes answered.
func decodeOutcomeList(job string, i int, raw []string, err error) ([]Outcome, error) {
	if err != nil {
		return nil, fmt.Errorf("reading job %s chunk %d outcomes: %w", job, i, err)
	}
	out, err := decodeOutcomes(raw)
	if err != nil {
		return nil, fmt.Errorf("job %s chunk %d: %w", job, i, err)
	}
	return out, nil
}

// ErrStale is returned by Record and FinishChunk for a task of another
// generation than the job's: the job was re-driven (or is gone) since the
// task started, and the task must stop.
var ErrStale = errors.New("task of an earlier generation of the job")

// recordScript appends an outcome and adds its counters atomically, fenced
// twice: by the job's generation (a task of an earlier generation records
// nothing) and, for a final outcome, by the chunk's bitmap of settled entries.
// A second run of the same chunk (asynq may re-deliver a task whose first run
// is still alive, maybe with another batch size) cannot settle a number twice
// nor count it twice: an outcome settles, and counts, only the entries of its
// range not settled yet, as Settle reads the list (the first outcome of an
// entry wins). Calls are counted either way: they were sent.
//
// KEYS: the chunk's group's counters, out list, settled bitmap, rps hash,
// series hash. ARGV: gen, outcome, lo, hi, final (0/1), now ms, now s,
// fleet limit, series t0, the generation of a counters hash without one,
// then field/delta pairs: call counters first, then a ("|", 0) pair, then
// the status counter (its delta is replaced by the number of entries newly
// settled).
var recordScript = redis.NewScript(seriesLua + packedLua + `
if (redis.call('HGET', KEYS[1], 'gen') or ARGV[10]) ~= ARGV[1] then return -1 end
local lo, hi = tonumber(ARGV[3]), tonumber(ARGV[4])
local fresh = hi - lo
if ARGV[5] == '1' then
  fresh = 0
  for i = lo, hi - 1 do
    if redis.call('SETBIT', KEYS[3], i, 1) == 0 then fresh = fresh + 1 end
  end
end
local status = false
series_limit(KEYS[5], ARGV[8])
for k = 11, #ARGV, 2 do
  if ARGV[k] == '|' then
    status = true
  elseif status then
    if fresh > 0 then redis.call('HINCRBY', KEYS[1], ARGV[k], fresh) end
  else
    redis.call('HINCRBY', KEYS[1], ARGV[k], ARGV[k + 1])
    if ARGV[k] == 'requests' then
      redis.call('HSETNX', KEYS[1], 'started_at', ARGV[6])
      redis.call('HINCRBY', KEYS[4], ARGV[7], ARGV[k + 1])
    end
    if series_kinds[ARGV[k]] then series_add(KEYS[5], tonumber(ARGV[7]), series_kinds[ARGV[k]], ARGV[k + 1], ARGV[9]) end
  end
end
if fresh == 0 then return 0 end
redis.call('RPUSH', KEYS[2], packed_ref(KEYS[2], ARGV[2]))
return 1`)

// Record appends o to chunk i's outcomes and adds c's call counters to the
// job's, in one step, for generation gen of the job; the entries o settles
// are counted under its status here, and only here (c's status counters are
// not used). It
// returns ErrStale when the job is of another generation. Entries already
// settled keep their first outcome, as in results.csv: an outcome that
// settles none is dropped (its calls still count).
func (s *Store) Record(ctx context.Context, job string, gen, i int, o Outcome, c Counters) error {
	rc := &recordCall{Record: Record{Job: job, Gen: gen, Chunk: i, Outcome: o, Calls: c}}
	if err := s.prepareRecord(ctx, rc); err != nil {
		return err
	}
	r, err := recordScript.Run(ctx, s.rdb, rc.keys, rc.args...).Int()
	return s.recorded1(rc, r, err)
}

// Record is one outcome to record, with the counters of its calls, for
// [Store.RecordAll]: the arguments of [Store.Record].
type Record struct {
	Job        string
	Gen, Chunk int
	Outcome    Outcome
	Calls      Counters
}

// recordCall is a Record with its script's keys and arguments.
type recordCall struct {
	Record
	keys []string
	args []any
	now  time.Time
}

// RecordAll records each of rs as Record does, in one pipeline (one round
// trip to a single Redis), and returns the error of each (nil when all were
// recorded). They are written in order.
func (s *Store) RecordAll(ctx context.Context, rs []Record) []error {
	pipe := s.rdb.Pipeline()
	settle := s.QueueRecords(ctx, pipe, rs)
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx) // each command's error is read by settle
	}
	return settle()
}

// QueueRecords queues the commands that record each of rs, as Record does,
// on pipe (a pipeline of the store's own client, which may carry other
// commands too), and returns what reads their answers once pipe has run:
// the error of each, as RecordAll's. ctx is used for the reads that
// preparing a record may need and for loading the script again, should
// the server have lost it.
func (s *Store) QueueRecords(ctx context.Context, pipe redis.Pipeliner, rs []Record) (settle func() []error) {
	errs := make([]error, len(rs))
	calls := make([]*recordCall, len(rs))
	cmds := make([]*redis.Cmd, len(rs))
	for i, r := range rs {
		rc := &recordCall{Record: r}
		if errs[i] = s.prepareRecord(ctx, rc); errs[i] == nil {
			calls[i] = rc
			cmds[i] = recordScript.EvalSha(ctx, pipe, rc.keys, rc.args...)
		}
	}
	return func() []error {
		for i, rc := range calls {
			if rc == nil {
				continue
			}
			err := cmds[i].Err()
			if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				// The server lost its scripts (a restart, a failover):
				// this one did not run; Run loads the script.
				cmds[i] = recordScript.Run(ctx, s.rdb, rc.keys, rc.args...)
				err = cmds[i].Err()
			}
			var r int
			if err == nil {
				r, err = cmds[i].Int()
			}
			errs[i] = s.recorded1(rc, r, err)
		}
		for _, err := range errs {
			if err != nil {
				return errs
			}
		}
		return nil
	}
}

// prepareRecord sets rc's keys and arguments.
func (s *Store) prepareRecord(ctx context.Context, rc *recordCall) error {
	job, gen, i, o, c := rc.Job, rc.Gen, rc.Chunk, rc.Outcome, rc.Calls
	l, err := s.layoutOf(ctx, job)
	if errors.Is(err, errNoJob) {
		return fmt.Errorf("recording job %s chunk %d (generation %d): %w", job, i, gen, ErrStale)
	}
	if err != nil {
		return err
	}
	now := s.now()
	v, err := encodeOutcome(o)
	if err != nil {
		return err
	}
	final := "0"
	if o.Final() {
		final = "1"
	}
	args := []any{gen, v, o.Lo, o.Hi, final, now.UnixMilli(), now.Unix(), s.limit, l.t0Arg(), l.genDefault()}
	args = append(args, c.callFields()...)
	args = append(args, "|", 0) // a pair, to keep the loop in step
	if o.Final() {
		// The script counts the entries it settles under their status.
		args = append(args, string(o.Status), 0)
	}
	g := groupOf(i, l.k)
	rc.keys = []string{groupKey(job, g), outKey(job, l.k, i), settledKey(job, l.k, i), rpsKey(job, g), seriesKey(job, g)}
	rc.args, rc.now = args, now
	return nil
}

// recorded1 is what a record script's answer r (or err) means for rc.
func (s *Store) recorded1(rc *recordCall, r int, err error) error {
	if err != nil {
		return fmt.Errorf("recording job %s chunk %d: %w", rc.Job, rc.Chunk, err)
	}
	if r < 0 {
		return fmt.Errorf("recording job %s chunk %d (generation %d): %w", rc.Job, rc.Chunk, rc.Gen, ErrStale)
	}
	o := rc.Outcome
	return s.recorded(rc.Job, Recorded{Chunk: rc.Chunk, Gen: rc.Gen, Outcome: &o, Counters: rc.Calls, At: rc.now})
}

// addScript adds call and status counters to the job, its rps and its
// series, in one step.
// KEYS: job, rps hash, series hash. ARGV: now ms, now s, fleet limit,
// series t0, then field/delta pairs.
var addScript = redis.NewScript(seriesLua + `
series_limit(KEYS[3], ARGV[3])
for k = 5, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[k], ARGV[k + 1])
  if ARGV[k] == 'requests' then
    redis.call('HSETNX', KEYS[1], 'started_at', ARGV[1])
    redis.call('HINCRBY', KEYS[2], ARGV[2], ARGV[k + 1])
  end
  if series_kinds[ARGV[k]] then series_add(KEYS[3], tonumber(ARGV[2]), series_kinds[ARGV[k]], ARGV[k + 1], ARGV[4]) end
end
return 0`)

// Add adds c to the job's counters (its record's, which Job adds to its
// groups').
func (s *Store) Add(ctx context.Context, job string, c Counters) error {
	l, err := s.layoutOf(ctx, job)
	if err != nil && !errors.Is(err, errNoJob) {
		return err
	}
	now := s.now()
	args := []any{now.UnixMilli(), now.Unix(), s.limit, l.t0Arg()}
	for _, f := range c.fields() {
		if f.v != 0 {
			args = append(args, f.name, f.v)
		}
	}
	if len(args) == 4 {
		return s.recorded(job, Recorded{Chunk: -1, Counters: c, At: now})
	}
	if err := addScript.Run(ctx, s.rdb, []string{jobKey(job), rpsKey(job, -1), seriesKey(job, -1)}, args...).Err(); err != nil {
		return wrap("counting for", job, err)
	}
	return s.recorded(job, Recorded{Chunk: -1, Counters: c, At: now})
}

// Rate returns job j's API request rate, the one figure status shows: while
// it runs, over the last minute (over the whole seconds since its first call
// when that is shorter, so a young job does not look slow); once finished,
// over the seconds in which it sent requests (its pace, not diluted by the
// hours between a run and its retry).
func (s *Store) Rate(ctx context.Context, j *Job) (float64, error) {
	// Each counters hash of the job (its own, its groups') has its rps.
	p := s.rdb.Pipeline()
	var all []*redis.MapStringStringCmd
	var some []*redis.SliceCmd
	var seconds int64
	if j.State.Finished() {
		for g := -1; g < j.groups(); g++ {
			all = append(all, p.HGetAll(ctx, rpsKey(j.ID, g)))
		}
	} else {
		last := s.now().Unix() - 1 // whole seconds only
		seconds = 60
		if !j.StartedAt.IsZero() {
			seconds = max(min(seconds, last-j.StartedAt.Unix()+1), 1)
		}
		fields := make([]string, seconds)
		for i := range fields {
			fields[i] = strconv.FormatInt(last-int64(i), 10)
		}
		for g := -1; g < j.groups(); g++ {
			some = append(some, p.HMGet(ctx, rpsKey(j.ID, g), fields...))
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		return 0, wrap("reading rate of", j.ID, err)
	}
	var sum int64
	add := func(v any) {
		if str, ok := v.(string); ok {
			n, _ := strconv.ParseInt(str, 10, 64)
			sum += n
		}
	}
	busy := map[string]bool{} // the seconds in which requests were sent
	for _, c := range all {
		for sec, v := range c.Val() {
			busy[sec] = true
			add(v)
		}
	}
	for _, c := range some {
		for _, v := range c.Val() {
			add(v)
		}
	}
	if j.State.Finished() {
		seconds = int64(len(busy))
	}
	if seconds == 0 {
		return 0, nil
	}
	return float64(sum) / float64(seconds), nil
}

// settledScript checks, in the chunk's group, that every entry of the chunk
// is settled, for a task of the group's generation. It writes the time, so
// that a WAIT after it covers the chunk's outcomes (WAIT waits for its own
// connection's last write).
// KEYS: the group's counters, the chunk's settled bitmap. ARGV: gen, the
// generation of a counters hash without one, entries, now ms.
var settledScript = redis.NewScript(`
if (redis.call('HGET', KEYS[1], 'gen') or ARGV[2]) ~= ARGV[1] then return -1 end
if redis.call('BITCOUNT', KEYS[2]) < tonumber(ARGV[3]) then return -2 end
redis.call('HSET', KEYS[1], 'settled_at', ARGV[4])
return 0`)

var finishChunkScript = doneScript(`
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '-1')
if gen ~= tonumber(ARGV[2]) then return {-1, gen} end
redis.call('SADD', KEYS[2], ARGV[1])
local st = redis.call('HGET', KEYS[1], 'state')
if (st == 'enqueued' or st == 'finalizing') and all_done() then return {1, gen} end
return {0, gen}`)

// ErrUnsettled is returned by FinishChunk for a chunk with entries that no
// outcome settled yet: the caller sends what jobstore.Pending still gives.
var ErrUnsettled = errors.New("chunk has numbers without a final outcome")

// FinishChunk marks chunk i, of n entries, settled for generation gen of the
// job: ErrStale for another generation, ErrUnsettled while any of its entries
// has no final outcome. It reports whether every chunk of the job is now
// settled: the caller then enqueues the finalize task of gen (its ID makes a
// second one a no-op).
func (s *Store) FinishChunk(ctx context.Context, job string, gen, i, n int) (allDone bool, err error) {
	l, err := s.layoutOf(ctx, job)
	if errors.Is(err, errNoJob) {
		return false, fmt.Errorf("finishing job %s chunk %d (generation %d): %w", job, i, gen, ErrStale)
	}
	if err != nil {
		return false, err
	}
	// First the chunk's group: are its entries settled? Settled bits are
	// never cleared but by a re-drive, which changes the generation that
	// the job's step checks next.
	g := groupOf(i, l.k)
	r, err := s.runReplicated(ctx, settledScript, []string{groupKey(job, g), settledKey(job, l.k, i)},
		gen, l.genDefault(), n, msOf(s.now())).Int()
	if err != nil {
		return false, fmt.Errorf("finishing job %s chunk %d: %w", job, i, err)
	}
	switch r {
	case -1:
		return false, fmt.Errorf("finishing job %s chunk %d (generation %d): %w", job, i, gen, ErrStale)
	case -2:
		return false, fmt.Errorf("finishing job %s chunk %d: %w", job, i, ErrUnsettled)
	}
	rs, err := s.runReplicated(ctx, finishChunkScript, []string{jobKey(job), doneKey(job)}, i, gen).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("finishing job %s chunk %d: %w", job, i, err)
	}
	if rs[0] == -1 {
		return false, fmt.Errorf("finishing job %s chunk %d (generation %d): %w", job, i, gen, ErrStale)
	}
	return rs[0] == 1, nil
}

// Abort stops the job for reason: workers send no more calls for it and
// record its remaining numbers failed. The first reason wins. It is
// announced to WatchAborts's subscribers.
func (s *Store) Abort(ctx context.Context, job, reason string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, jobKey(job), fAbort, reason)
		p.Publish(ctx, abortsChannel, job)
		return nil
	})
	return err
}

// Aborted returns the job's abort reason, empty when it runs normally.
func (s *Store) Aborted(ctx context.Context, job string) (string, error) {
	r, err := s.rdb.HGet(ctx, jobKey(job), fAbort).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return r, err
}

var beginFinalizeScript = doneScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if (redis.call('HGET', KEYS[1], 'gen') or '0') ~= ARGV[1] then return 0 end
if st == 'finalizing' then return 1 end
if (st ~= 'enqueued' and st ~= 'awaiting_callbacks') or not all_done() then return 0 end
redis.call('HSET', KEYS[1], 'state', 'finalizing', 'finalizing_at', ARGV[2])
return 1`)

// BeginFinalize moves generation gen of the job to Finalizing. It reports
// false when there is nothing to finalize (another generation, already done,
// or not every chunk settled), which makes the finalize task idempotent.
func (s *Store) BeginFinalize(ctx context.Context, job string, gen int) (bool, error) {
	r, err := beginFinalizeScript.Run(ctx, s.rdb, []string{jobKey(job), doneKey(job)}, gen, msOf(s.now())).Int()
	if err != nil {
		return false, wrap("finalizing", job, err)
	}
	return r == 1, nil
}

var endFinalizeScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'finalizing' or (redis.call('HGET', KEYS[1], 'gen') or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', ARGV[3])
return 1`)

// EndFinalize moves the job from Finalizing to its final state (see
// FinalState).
func (s *Store) EndFinalize(ctx context.Context, job string, gen int) (State, error) {
	abort, err := s.Aborted(ctx, job)
	if err != nil {
		return "", wrap("finalizing", job, err)
	}
	st := FinalState(abort)
	if err := endFinalizeScript.Run(ctx, s.rdb, []string{jobKey(job)}, gen, string(st), msOf(s.now())).Err(); err != nil {
		return "", wrap("finalizing", job, err)
	}
	s.announceFinished(ctx, job, st)
	return st, nil
}
