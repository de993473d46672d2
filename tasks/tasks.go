// Package tasks defines the asynq tasks capcheck enqueues: their type names,
// payloads and deterministic IDs. Payloads are tiny on purpose: the numbers of a
// chunk live in the job store, not in the queue.
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/jobstore"
)

const (
	// Queue is the asynq queue every capcheck task goes to.
	Queue = "capcheck"
	// TypeChunk is a chunk of numbers to check.
	TypeChunk = "capcheck:chunk"
	// TypeFinalize writes a finished job's output files.
	TypeFinalize = "capcheck:finalize"

	// ChunkMaxRetry bounds asynq's own retries of a chunk task (crashes, Redis
	// errors, lease expiry). API errors are retried inside the handler.
	ChunkMaxRetry = 20
	// FinalizeMaxRetry bounds the retries of a finalize task: high, since a
	// job cannot finish without it and its usual failure (the output folder
	// not writable, a full disk) is fixed by hand, maybe hours later.
	FinalizeMaxRetry = 1000
)

// Chunk is the payload of a TypeChunk task.
type Chunk struct {
	Job   string `json:"job"`
	Chunk int    `json:"chunk"`
	// Gen is the job's generation: 0 when enqueued, bumped by each re-drive so
	// that new tasks get new IDs.
	Gen int `json:"gen"`
	// Retake counts the takeovers of the chunk from workers that died
	// running it (the worker's chunk holds); 0 for the task enqueued.
	Retake int `json:"retake,omitempty"`
}

// ID is the task ID: re-enqueueing the same chunk of the same generation
// conflicts instead of creating a second task. A takeover has an ID of its
// own: the dead worker's task is still in asynq's hands until its lease
// expires.
func (c Chunk) ID() string {
	if c.Retake > 0 {
		return fmt.Sprintf("%s:chunk:%d:%d:retake:%d", c.Job, c.Chunk, c.Gen, c.Retake)
	}
	return fmt.Sprintf("%s:chunk:%d:%d", c.Job, c.Chunk, c.Gen)
}

// ChunkOfID returns the chunk task whose ID is id, as Chunk.ID writes it,
// and false for any other ID (a finalize task's, a forged one's): a task
// capcheck enqueued carries in its ID everything its payload holds.
func ChunkOfID(id string) (Chunk, bool) {
	job, rest, ok := strings.Cut(id, ":chunk:")
	if !ok || !jobstore.ValidJobID(job) {
		return Chunk{}, false
	}
	f := strings.Split(rest, ":")
	switch {
	case len(f) == 2:
		f = append(f, "0")
	case len(f) == 4 && f[2] == "retake":
		f = []string{f[0], f[1], f[3]}
	default:
		return Chunk{}, false
	}
	c := Chunk{Job: job}
	for i, v := range []*int{&c.Chunk, &c.Gen, &c.Retake} {
		n, err := strconv.Atoi(f[i])
		if err != nil || n < 0 || n > IndexMax {
			return Chunk{}, false
		}
		*v = n
	}
	if c.ID() != id { // leading zeros, a sign, a retake of 0
		return Chunk{}, false
	}
	return c, true
}

// NewChunk returns the task for c, with its ID, queue and retry limit set.
func NewChunk(c Chunk) *asynq.Task {
	b, _ := json.Marshal(c) // cannot fail: strings and ints
	return asynq.NewTask(TypeChunk, b, asynq.TaskID(c.ID()), asynq.Queue(Queue), asynq.MaxRetry(ChunkMaxRetry))
}

// ParseChunk decodes the payload of a TypeChunk task. Anyone who can write to
// Redis can forge a task, so the payload is checked as strictly as a command
// line before its job ID names a key, a file or a folder: the error of a
// payload that is not one capcheck writes wraps ErrBadPayload.
func ParseChunk(t *asynq.Task) (Chunk, error) {
	var c Chunk
	if err := parse(t, "chunk", &c, &c.Job, &c.Gen); err != nil {
		return c, err
	}
	if c.Chunk < 0 || c.Chunk > IndexMax {
		return c, fmt.Errorf("decoding chunk task: %w: chunk %d is outside 0 to %d", ErrBadPayload, c.Chunk, IndexMax)
	}
	if c.Retake < 0 || c.Retake > IndexMax {
		return c, fmt.Errorf("decoding chunk task: %w: retake %d is outside 0 to %d", ErrBadPayload, c.Retake, IndexMax)
	}
	return c, nil
}

// ErrBadPayload is wrapped by the errors of ParseChunk and ParseFinalize for
// a payload capcheck does not write: a handler refuses it without retrying
// (asynq.SkipRetry).
var ErrBadPayload = errors.New("bad task payload")

// IndexMax bounds the chunk index and the generation a task may carry.
const IndexMax = math.MaxInt32

// payloadMax bounds a payload: capcheck's are under 200 bytes.
const payloadMax = 1024

// parse reads the JSON payload of t, a kind task, into v, then checks the
// job ID (the rule of the command line) and the generation it read into
// job and gen.
func parse(t *asynq.Task, kind string, v any, job *string, gen *int) error {
	bad := func(err error) error { return fmt.Errorf("decoding %s task: %w: %w", kind, ErrBadPayload, err) }
	p := t.Payload()
	if len(p) > payloadMax {
		return bad(fmt.Errorf("%d bytes, more than %d", len(p), payloadMax))
	}
	if err := json.Unmarshal(p, v); err != nil {
		return bad(err)
	}
	if err := jobstore.ValidateJobID(*job); err != nil {
		return bad(err)
	}
	if *gen < 0 || *gen > IndexMax {
		return bad(fmt.Errorf("generation %d is outside 0 to %d", *gen, IndexMax))
	}
	return nil
}

// Finalize is the payload of a TypeFinalize task.
type Finalize struct {
	Job string `json:"job"`
	Gen int    `json:"gen"`
}

// ID is the task ID: one finalize task per job generation.
func (f Finalize) ID() string { return fmt.Sprintf("%s:finalize:%d", f.Job, f.Gen) }

// NewFinalize returns the task for f, with its ID, queue and retry limit set.
func NewFinalize(f Finalize) *asynq.Task {
	b, _ := json.Marshal(f)
	return asynq.NewTask(TypeFinalize, b, asynq.TaskID(f.ID()), asynq.Queue(Queue), asynq.MaxRetry(FinalizeMaxRetry))
}

// ParseFinalize decodes the payload of a TypeFinalize task, checked as
// ParseChunk checks a chunk's.
func ParseFinalize(t *asynq.Task) (Finalize, error) {
	var f Finalize
	err := parse(t, "finalize", &f, &f.Job, &f.Gen)
	return f, err
}

// Enqueue enqueues t unless a task with its ID is already queued, running or
// retained; it reports whether t was enqueued. Enqueueing the same task twice
// is how crashed enqueues and finishing chunks stay idempotent.
func Enqueue(ctx context.Context, c *asynq.Client, t *asynq.Task) (bool, error) {
	_, err := c.EnqueueContext(ctx, t)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return false, nil
	default:
		return false, fmt.Errorf("enqueueing %s task: %w", t.Type(), err)
	}
}

// FinalizeWhenDone enqueues the finalize task f when allDone: the job store
// said every chunk of f's generation is settled (a worker finishing the last
// chunk, an enqueue or a re-drive that found them all settled already). It
// reports whether it enqueued the task; a second one is a no-op.
func FinalizeWhenDone(ctx context.Context, c *asynq.Client, allDone bool, f Finalize) (bool, error) {
	if !allDone {
		return false, nil
	}
	return Enqueue(ctx, c, NewFinalize(f))
}

// leaseKey is asynq's (v0.26) sorted set of the tasks of Queue handed to a
// worker and not yet done: the task ID, scored by when its lease expires
// (Unix seconds). A live worker's heartbeat extends its leases every 5 s;
// a dead worker's stay until asynq's recoverer finds them expired for 30 s.
const leaseKey = "asynq:{" + Queue + "}:lease"

// A Lease is a task asynq handed to a worker and not yet done.
type Lease struct {
	ID string
	// Until is when the lease expires, Unix seconds: it changes only when
	// a live worker extends it, or the task is handed out again.
	Until int64
}

// Leased returns up to n of the leases of Queue that have not expired at
// now.
func Leased(ctx context.Context, rdb redis.Cmdable, now time.Time, n int) ([]Lease, error) {
	zs, err := rdb.ZRangeByScoreWithScores(ctx, leaseKey, &redis.ZRangeBy{
		Min: strconv.FormatInt(now.Unix(), 10), Max: "+inf", Count: int64(n),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the leases of the queue's tasks: %w", err)
	}
	ls := make([]Lease, 0, len(zs))
	for _, z := range zs {
		if id, ok := z.Member.(string); ok {
			ls = append(ls, Lease{ID: id, Until: int64(z.Score)})
		}
	}
	return ls, nil
}

// WakeChannel is the pub/sub channel on which enqueued tasks are announced:
// idle workers wait on it between looks at the queue instead of polling.
const WakeChannel = "capcheck:tasks"

// Publisher is the part of a Redis client Announce uses.
type Publisher interface {
	Publish(ctx context.Context, channel string, message any) *redis.IntCmd
}

// Announce tells idle workers that tasks were enqueued. It is a hint: one
// lost costs an idle worker's longest wait (a second), and a failure is not
// the caller's, so it returns nothing.
func Announce(ctx context.Context, rdb Publisher) {
	rdb.Publish(ctx, WakeChannel, "")
}
