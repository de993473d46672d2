package main

import (
	"fmt"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/outfiles"
)

const flagFormat = "format"

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "rebuild a finished job's output files from what the workers recorded",
		ArgsUsage: "JOB",
		Description: "Writes {out}/{job}/results.csv (or results.jsonl with --format jsonl), rejects.csv\n" +
			"and summary.json again from Redis: after the output folder was lost, or to get JSON lines.",
		Flags: slices.Concat(configs.SharedFlags(), []cli.Flag{
			&cli.StringFlag{Name: flagFormat, Value: string(outfiles.CSV), Usage: "results format: csv or jsonl"},
		}),
		Action: exportAction,
	}
}

func exportAction(c *cli.Context) error {
	id, err := jobArg(c)
	if err != nil {
		return err
	}
	format := outfiles.Format(c.String(flagFormat))
	if format != outfiles.CSV && format != outfiles.JSONL {
		return usageErrorf("--format must be csv or jsonl (got %q)", format)
	}
	s, err := openSession(c, configs.Needs{})
	if err != nil {
		return err
	}
	defer s.Close()
	store, cfg := s.store, s.cfg
	j, err := store.Job(c.Context, id)
	if err != nil {
		return err
	}
	// A finalizing job has every number settled; its finalize task may have
	// given up (e.g. the workers' output folder was not writable): export
	// writes the files and finishes it.
	if !j.State.Finished() && j.State != jobstore.Finalizing {
		return fmt.Errorf("job %s is %s: export works on finished jobs ('capcheck wait %s' first)", id, j.State, id)
	}
	if j.State == jobstore.Finalizing {
		// Finish it as its finalize task would: results.csv first, whatever
		// --format asks for, then the job's records expire in due time.
		if _, err := outfiles.Write(c.Context, store, id, cfg.Out); err != nil {
			return err
		}
		if _, err := store.EndFinalize(c.Context, id, j.Gen); err != nil {
			return err
		}
		if err := store.Expire(c.Context, id, configs.RetentionDefault); err != nil {
			s.log.Warn("could not set the expiry of the job's records", "job", id, "err", err)
		}
		s.log.Info("finished a job whose finalize task gave up", "job", id, "records_expire_in", configs.RetentionDefault)
	}
	sum, err := outfiles.Export(c.Context, store, id, cfg.Out, format)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: %d accepted, %d rejected, %d failed\n", outfiles.Dir(cfg.Out, id),
		sum.Results["accepted"], sum.Results["rejected"], sum.Results["failed"])
	return nil
}
