package jobstore

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// State is where a job is in its life.
type State string

// Job states, in the order a job goes through them.
const (
	Enqueuing  State = "enqueuing"  // chunks are being stored and enqueued
	Enqueued   State = "enqueued"   // every chunk is enqueued; workers are on it
	Finalizing State = "finalizing" // every chunk is settled; output files are being written
	Done       State = "done"       // output files written
	FailedJob  State = "failed"     // output files written, but the job was stopped (see Job.Abort)
)

// Finished reports whether s is a final state.
func (s State) Finished() bool { return s == Done || s == FailedJob }

// FinalState is the state a job ends in once its files are written: FailedJob
// when it was aborted (abort is its reason), else Done.
func FinalState(abort string) State {
	if abort != "" {
		return FailedJob
	}
	return Done
}

var jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// JobIDRule says what a job ID may be, for messages.
const JobIDRule = "1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-' (and not . or ..)"

// ValidJobID reports whether id follows JobIDRule. IDs become part of Redis
// keys, task IDs and directory names, hence the narrow alphabet.
func ValidJobID(id string) bool {
	return jobIDPattern.MatchString(id) && id != "." && id != ".."
}

// ValidateJobID says what is wrong with a job ID, if anything.
func ValidateJobID(id string) error {
	if !ValidJobID(id) {
		return fmt.Errorf("job ID %q: must be %s", id, JobIDRule)
	}
	return nil
}

// Spec is what identifies a job's work: re-running enqueue with another Spec
// under the same ID is refused rather than mixing two inputs.
type Spec struct {
	ID          string
	Input       string // input name as given (path, or "-" for stdin)
	Fingerprint string // identifies the input content and the options that shape chunks
	ChunkSize   int
}

// Counts are the per-record counts of the enqueue.
type Counts struct {
	Rows       int64 // data records read
	Valid      int64 // valid, first-seen numbers: sent to the API, or Cached
	Invalid    int64
	Missing    int64
	Malformed  int64
	Duplicates int64
	// Cached are the valid numbers the capability memory answered (not
	// sent; see --recheck-after), CachedRejected those of them it answered
	// with the API's rejection.
	Cached         int64
	CachedRejected int64
}

// Sent is the number of valid numbers sent to the API.
func (c Counts) Sent() int64 { return c.Valid - c.Cached }

// Counters are the running counts the workers add to.
type Counters struct {
	Accepted    int64 `json:"accepted,omitempty"`     // numbers
	Rejected    int64 `json:"rejected,omitempty"`     // numbers
	Failed      int64 `json:"failed,omitempty"`       // numbers
	Requests    int64 `json:"requests,omitempty"`     // API calls sent (429s included)
	RateLimited int64 `json:"rate_limited,omitempty"` // 429 answers
	Retries     int64 `json:"retries,omitempty"`      // calls repeated after a transient error
}

// Job is a job's record.
type Job struct {
	Spec
	State State
	// Abort is why the job was stopped (e.g. the API refused the key); empty
	// while it runs normally.
	Abort string
	// Gen counts re-drives: 0 for the first run.
	Gen int
	// Redriving is set while a re-drive is being enqueued (Redrive until
	// FinishRedrive): only Redrive may go on with the job then.
	Redriving bool

	Counts
	Counters
	// Changes is the numbers whose capability changed from what the memory
	// held before the job (changes.csv); set by finalize.
	Changes int64

	RejectBlobs int // stored blobs of rejects
	// GroupChunks is how many chunks share a group of keys (GroupChunks
	// when the job was created); 0 for a job created before groups.
	GroupChunks    int
	Chunks         int // total; known once State is past Enqueuing
	ChunksEnqueued int // chunks [0, ChunksEnqueued) are stored and enqueued
	ChunksDone     int

	// CallbackWait is how long the job waits for callbacks after its last
	// API answer; 0 when it waits for none. AwaitUntil is when that wait
	// ends at the latest (set on entering AwaitingCallbacks).
	CallbackWait time.Duration
	AwaitUntil   time.Time

	CreatedAt  time.Time
	EnqueuedAt time.Time
	StartedAt  time.Time // first API call
	FinishedAt time.Time
	// AwaitAt and FinalizingAt are when the job entered AwaitingCallbacks
	// and Finalizing (zero when it has not).
	AwaitAt      time.Time
	FinalizingAt time.Time
}

// Hash field names of the job record.
const (
	fID, fInput, fFingerprint, fChunkSize = "id", "input", "fingerprint", "chunk_size"
	fState, fAbort, fGen                  = "state", "abort", "gen"
	fRows, fValid, fInvalid, fMissing     = "rows", "valid", "invalid", "missing"
	fMalformed, fDuplicates               = "malformed", "duplicates"
	fCached, fCachedRejected, fChanges    = "cached", "cached_rejected", "changes"
	fAccepted, fRejected, fFailed         = "accepted", "rejected", "failed"
	fRequests, fRateLimited, fRetries     = "requests", "rate_limited", "retries"
	fRejectBlobs, fChunks, fChunksEnq     = "reject_blobs", "chunks", "chunks_enqueued"
	fCreated, fEnqueued, fStarted         = "created_at", "enqueued_at", "started_at"
	fFinished                             = "finished_at"
)

// callFields are the counters of calls, as field/delta pairs for a script.
func (c Counters) callFields() []any {
	return nonZero(fRequests, c.Requests, fRateLimited, c.RateLimited, fRetries, c.Retries)
}

func nonZero(pairs ...any) []any {
	var out []any
	for k := 0; k < len(pairs); k += 2 {
		if pairs[k+1].(int64) != 0 {
			out = append(out, pairs[k], pairs[k+1])
		}
	}
	return out
}

func (c Counters) fields() []struct {
	name string
	v    int64
} {
	return []struct {
		name string
		v    int64
	}{
		{fAccepted, c.Accepted}, {fRejected, c.Rejected}, {fFailed, c.Failed},
		{fRequests, c.Requests}, {fRateLimited, c.RateLimited}, {fRetries, c.Retries},
	}
}

func parseJob(h map[string]string) *Job {
	i64 := func(k string) int64 { v, _ := strconv.ParseInt(h[k], 10, 64); return v }
	ms := func(k string) time.Time {
		v := i64(k)
		if v == 0 {
			return time.Time{}
		}
		return time.UnixMilli(v).UTC()
	}
	wait, until := parseWait(h)
	return &Job{
		CallbackWait: wait, AwaitUntil: until,
		Spec:  Spec{ID: h[fID], Input: h[fInput], Fingerprint: h[fFingerprint], ChunkSize: int(i64(fChunkSize))},
		State: State(h[fState]), Abort: h[fAbort], Gen: int(i64(fGen)), Redriving: h["redrive"] == "1",
		Counts: Counts{
			Rows: i64(fRows), Valid: i64(fValid), Invalid: i64(fInvalid),
			Missing: i64(fMissing), Malformed: i64(fMalformed), Duplicates: i64(fDuplicates),
			Cached: i64(fCached), CachedRejected: i64(fCachedRejected),
		},
		Changes: i64(fChanges),
		Counters: Counters{
			Accepted: i64(fAccepted), Rejected: i64(fRejected), Failed: i64(fFailed),
			Requests: i64(fRequests), RateLimited: i64(fRateLimited), Retries: i64(fRetries),
		},
		GroupChunks: int(i64(fGroupChunks)),
		RejectBlobs: int(i64(fRejectBlobs)), Chunks: int(i64(fChunks)), ChunksEnqueued: int(i64(fChunksEnq)),
		CreatedAt: ms(fCreated), EnqueuedAt: ms(fEnqueued), StartedAt: ms(fStarted), FinishedAt: ms(fFinished),
		AwaitAt: ms("await_at"), FinalizingAt: ms("finalizing_at"),
	}
}

// Settled is the number of valid numbers with a final status so far: the
// cached ones have theirs from the start.
func (j *Job) Settled() int64 { return j.Accepted + j.Rejected + j.Failed + j.Cached }
