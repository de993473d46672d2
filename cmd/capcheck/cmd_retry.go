package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
)

func retryCommand() *cli.Command {
	return &cli.Command{
		Name:      "retry",
		Usage:     "send the numbers of a finished job that ended failed again",
		ArgsUsage: "JOB",
		Description: "For a job that finished with failed numbers (e.g. after a provider outage) or that\n" +
			"was stopped (e.g. a wrong key, now fixed): its failed numbers go back to the workers\n" +
			"as chunk tasks of a new generation; numbers accepted or rejected are not sent again.\n" +
			"When they are done the job's output files are written again. Prints the job ID;\n" +
			"follow with 'capcheck wait JOB'.",
		Flags:  configs.SharedFlags(),
		Action: retryAction,
	}
}

func retryAction(c *cli.Context) error {
	id, err := jobArg(c)
	if err != nil {
		return err
	}
	s, err := openSession(c, configs.Needs{})
	if err != nil {
		return err
	}
	defer s.Close()
	store, log, rdb := s.store, s.log, s.rdb
	lock, err := store.Lock(c.Context, id, owner(), time.Minute)
	if err != nil {
		return err
	}
	defer lock.Release(c.Context)

	gen, chunks, err := store.Redrive(c.Context, id)
	if errors.Is(err, jobstore.ErrNothingToRedrive) {
		log.Info("nothing to retry: no number of the job ended failed", "job", id)
		fmt.Fprintln(c.App.Writer, id)
		return nil
	}
	if err != nil {
		return err
	}
	client := asynq.NewClientFromRedisClient(rdb)
	for _, i := range chunks {
		if _, err := tasks.Enqueue(c.Context, client, tasks.NewChunk(tasks.Chunk{Job: id, Chunk: i, Gen: gen})); err != nil {
			return fmt.Errorf("job %s: %w (run 'capcheck retry %s' again to finish)", id, err, id)
		}
	}
	allDone, err := store.FinishRedrive(c.Context, id)
	if err != nil {
		return err
	}
	if allDone {
		if _, err := tasks.Enqueue(c.Context, client, tasks.NewFinalize(tasks.Finalize{Job: id, Gen: gen})); err != nil {
			return err
		}
	}
	log.Info("failed numbers re-driven", "job", id, "generation", gen, "chunks", len(chunks))
	fmt.Fprintln(c.App.Writer, id)
	return nil
}

// owner names this process in job locks, so that a refused second run can
// say who holds the job.
func owner() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid()) + " since " + time.Now().UTC().Format(time.RFC3339)
}
