// Package tasks defines the asynq tasks capcheck enqueues: their type names,
// payloads and deterministic IDs. Payloads are tiny on purpose: the numbers of a
// chunk live in the job store, not in the queue.
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
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
}

// ID is the task ID: re-enqueueing the same chunk of the same generation
// conflicts instead of creating a second task.
func (c Chunk) ID() string { return fmt.Sprintf("%s:chunk:%d:%d", c.Job, c.Chunk, c.Gen) }

// NewChunk returns the task for c, with its ID, queue and retry limit set.
func NewChunk(c Chunk) *asynq.Task {
	b, _ := json.Marshal(c) // cannot fail: strings and ints
	return asynq.NewTask(TypeChunk, b, asynq.TaskID(c.ID()), asynq.Queue(Queue), asynq.MaxRetry(ChunkMaxRetry))
}

// ParseChunk decodes the payload of a TypeChunk task.
func ParseChunk(t *asynq.Task) (Chunk, error) {
	var c Chunk
	if err := json.Unmarshal(t.Payload(), &c); err != nil {
		return c, fmt.Errorf("decoding chunk task: %w", err)
	}
	if c.Job == "" || c.Chunk < 0 {
		return c, fmt.Errorf("decoding chunk task: bad payload %q", t.Payload())
	}
	return c, nil
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

// ParseFinalize decodes the payload of a TypeFinalize task.
func ParseFinalize(t *asynq.Task) (Finalize, error) {
	var f Finalize
	if err := json.Unmarshal(t.Payload(), &f); err != nil {
		return f, fmt.Errorf("decoding finalize task: %w", err)
	}
	if f.Job == "" {
		return f, fmt.Errorf("decoding finalize task: bad payload %q", t.Payload())
	}
	return f, nil
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
