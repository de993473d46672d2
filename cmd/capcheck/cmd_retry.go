package main

import (
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/jobstore"
)

func retryCommand() *cli.Command {
	return jobCommand(cli.Command{
		Name:  "retry",
		Usage: "send the numbers of a finished job that ended failed again",
		Description: "For a job that finished with failed numbers (e.g. after a provider outage) or that\n" +
			"was stopped (e.g. a wrong key, now fixed): its failed numbers go back to the workers\n" +
			"as chunk tasks of a new generation; numbers accepted or rejected are not sent again.\n" +
			"When they are done the job's output files are written again. Prints the job ID;\n" +
			"follow with 'capcheck wait JOB'.",
	}, retryAction)
}

func retryAction(c *cli.Context, s *session, id string) error {
	done, err := enqueue.Redrive(c.Context, s.store, asynq.NewClientFromRedisClient(s.rdb), id)
	var unfinished *enqueue.RedriveError
	switch {
	case errors.Is(err, jobstore.ErrNothingToRedrive):
		s.log.Info("nothing to retry: no number of the job ended failed", "job", id)
		fmt.Fprintln(c.App.Writer, id)
		return nil
	case errors.As(err, &unfinished):
		return fmt.Errorf("%w (run 'capcheck retry %s' again to finish)", err, id)
	case err != nil:
		return err
	}
	s.log.Info("failed numbers re-driven", "job", id, "generation", done.Gen, "chunks", done.Chunks)
	fmt.Fprintln(c.App.Writer, id)
	return nil
}
