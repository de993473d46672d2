package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/outfiles"
)

const flagFormat = "format"

func exportCommand() *cli.Command {
	return jobCommand(cli.Command{
		Name:  "export",
		Usage: "rebuild a finished job's output files from what the workers recorded",
		Description: "Writes {out}/{job}/results.csv (or results.jsonl with --format jsonl), rejects.csv\n" +
			"and summary.json again from Redis: after the output folder was lost, or to get JSON lines.",
		Flags: []cli.Flag{formatFlag("results format: csv or jsonl")},
	}, exportAction)
}

// formatFlag is --format of the commands that write results or rows: csv
// (the default) or jsonl, checked as the command line is read.
func formatFlag(usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: flagFormat, Value: string(outfiles.CSV), Usage: usage,
		Action: func(_ *cli.Context, f string) error {
			if format := outfiles.Format(f); format != outfiles.CSV && format != outfiles.JSONL {
				return usageErrorf("--format must be csv or jsonl (got %q)", format)
			}
			return nil
		}}
}

func exportAction(c *cli.Context, s *session, id string) error {
	format := outfiles.Format(c.String(flagFormat))
	sum, err := writeFiles(c.Context, s.store, id, s.cfg.Out, format, s.log)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: %d accepted, %d rejected, %d failed\n", outfiles.Dir(s.cfg.Out, id),
		sum.Results["accepted"], sum.Results["rejected"], sum.Results["failed"])
	return nil
}

// writeFiles writes job id's output files under out on this host, streamed
// from what Redis holds: export, wait and run do, so that workers need no
// shared disk. A job still finalizing (its finalize task gave up, say) has
// every number settled: it is finished here as its finalize task would.
func writeFiles(ctx context.Context, store *jobstore.Store, id, out string, format outfiles.Format, log *slog.Logger) (*outfiles.Summary, error) {
	j, err := store.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if !j.State.Finished() && j.State != jobstore.Finalizing {
		return nil, fmt.Errorf("job %s is %s: export works on finished jobs ('capcheck wait %s' first)", id, j.State, id)
	}
	if j.State == jobstore.Finalizing {
		// results.csv first, whatever format asks for, then the job's
		// records expire in due time.
		if _, err := outfiles.Write(ctx, store, id, out); err != nil {
			return nil, err
		}
		if _, err := store.EndFinalize(ctx, id, j.Gen); err != nil {
			return nil, err
		}
		if err := store.Expire(ctx, id, configs.RetentionDefault); err != nil {
			log.Warn("could not set the expiry of the job's records", "job", id, "err", err)
		}
		log.Info("finished a job whose finalize task gave up", "job", id, "records_expire_in", configs.RetentionDefault)
	}
	return outfiles.Export(ctx, store, id, out, format)
}
