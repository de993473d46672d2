package enqueue

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
)

// Redriven says what Redrive did.
type Redriven struct {
	// Gen is the job's new generation: the chunk tasks' and the finalize
	// task's.
	Gen int
	// Chunks is the number of chunk tasks enqueued.
	Chunks int
}

// RedriveError is the error of a re-drive that stopped after the job store
// moved the failed numbers back: calling Redrive again finishes it.
type RedriveError struct {
	Job string
	Err error
}

func (e *RedriveError) Error() string { return "job " + e.Job + ": " + e.Err.Error() }
func (e *RedriveError) Unwrap() error { return e.Err }

// Redrive sends the numbers of a finished job that ended failed (a provider
// outage; a job stopped by a wrong key, now fixed) to the workers again:
// the job store drops their outcomes and bumps the job's generation
// (jobstore.Store.Redrive), one chunk task of the new generation is enqueued
// for every chunk not done, and when there is none the finalize task is.
// Numbers accepted or rejected are not sent again. It holds the job's lock
// while it works, so an enqueue of the same job waits. A job with no failed
// numbers is left as it is, with jobstore.ErrNothingToRedrive.
func Redrive(ctx context.Context, store *jobstore.Store, client *asynq.Client, id string) (Redriven, error) {
	lock, err := store.Lock(ctx, id, redriveOwner(), time.Minute)
	if err != nil {
		return Redriven{}, err
	}
	defer lock.Release(ctx)

	gen, chunks, err := store.Redrive(ctx, id)
	if err != nil {
		return Redriven{}, err
	}
	done := Redriven{Gen: gen}
	for _, i := range chunks {
		if _, err := tasks.Enqueue(ctx, client, tasks.NewChunk(tasks.Chunk{Job: id, Chunk: i, Gen: gen})); err != nil {
			return done, &RedriveError{Job: id, Err: err}
		}
		done.Chunks++
	}
	allDone, err := store.FinishRedrive(ctx, id)
	if err != nil {
		return done, err
	}
	_, err = tasks.FinalizeWhenDone(ctx, client, allDone, tasks.Finalize{Job: id, Gen: gen})
	return done, err
}

// redriveOwner names this process in the job's lock, so that a refused
// second run can say who holds the job.
func redriveOwner() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid()) + " since " + time.Now().UTC().Format(time.RFC3339)
}
