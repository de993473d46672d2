package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/jobstatus"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/outfiles"
)

const flagWaitTimeout = "timeout"

// progressLogEvery is how often wait logs progress when not on a terminal.
const progressLogEvery = 10 * time.Second

func waitCommand() *cli.Command {
	return jobCommand(cli.Command{
		Name:  "wait",
		Usage: "block until a job is finished; the exit code tells the outcome",
		Description: "Shows a progress bar with counts and ETA on a terminal, a log line every 10s\n" +
			"otherwise. Once the job is finished, writes its files under --out on this host, from\n" +
			"Redis (the workers need no shared disk). Exit code: 0 every number has a final status and none failed; 3 the job\n" +
			"finished with failed numbers; 1 the job failed (e.g. the API refused the key),\n" +
			"--timeout passed, or the job's record disappeared from Redis; 2 bad usage or\n" +
			"configuration.",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: flagWaitTimeout, Usage: "give up (exit 1) after this long; 0 waits for ever",
				Action: func(_ *cli.Context, d time.Duration) error {
					if d < 0 {
						return usageErrorf("--timeout must be >= 0 (got %s)", d)
					}
					return nil
				}},
		},
	}, waitAction)
}

func waitAction(c *cli.Context, s *session, id string) error {
	if _, err := s.store.Job(c.Context, id); err != nil {
		return err // a typo in the ID should not wait for ever
	}
	if err := checkOut(s.cfg.Out); err != nil {
		// Said now, not once the job is finished; not an error: a worker
		// sharing --out (mounted read-only here, say) writes the files.
		s.log.Warn("wait cannot write under --out: it will need a worker sharing the folder to have written the job's files",
			"out", s.cfg.Out, "err", err)
	}
	st, err := waitJob(c.Context, s.store, id, c.Duration(flagWaitTimeout), c.App.ErrWriter, s.log)
	if err != nil {
		return err
	}
	// The files on this host, from Redis: the workers need no shared disk.
	// A worker sharing this disk wrote them already.
	if j, err := s.store.Job(c.Context, id); err == nil && outfiles.Current(s.cfg.Out, j) {
		return finished(c.App.Writer, st, s.cfg.Out, retryHint(id))
	}
	if _, err := writeFiles(c.Context, s.store, id, s.cfg.Out, outfiles.CSV, s.log); err != nil {
		return fmt.Errorf("job %s finished, but writing its files under %s failed: %w", id, s.cfg.Out, err)
	}
	return finished(c.App.Writer, st, s.cfg.Out, retryHint(id))
}

// waitJob waits for job id with a progress bar on a terminal, log lines
// otherwise, and returns its final status.
func waitJob(ctx context.Context, store *jobstore.Store, id string, timeout time.Duration, stderr io.Writer, log *slog.Logger) (*jobstatus.Status, error) {
	opts := jobstatus.WaitOptions{Timeout: timeout}
	if isTerminal(stderr) {
		bar := progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("job "+id),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
		)
		opts.Progress = func(s *jobstatus.Status) {
			if s.Valid > 0 && bar.GetMax64() != s.Valid && s.State != string(jobstore.Enqueuing) {
				bar.ChangeMax64(s.Valid)
			}
			desc := fmt.Sprintf("%s: %d accepted, %d rejected, %d failed",
				s.State, s.Numbers.Accepted, s.Numbers.Rejected, s.Numbers.Failed)
			if c := s.Callbacks; c != nil {
				desc += fmt.Sprintf("; callbacks %d received, %d awaited", c.Received, c.Awaited)
			}
			bar.Describe(desc)
			_ = bar.Set64(s.Valid - s.Numbers.Pending)
		}
		defer bar.Exit()
	} else {
		// The end is announced; reads are for the log line only.
		opts.Poll = progressLogEvery / 2
		var last time.Time
		opts.Progress = func(s *jobstatus.Status) {
			if time.Since(last) >= progressLogEvery && !s.Finished() {
				last = time.Now()
				log.Info("progress", "job", id, "status", s.Line())
			}
		}
	}
	st, err := jobstatus.Wait(ctx, store, id, opts)
	if errors.Is(err, jobstatus.ErrTimeout) {
		return nil, err
	}
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("stopped waiting for job %s (it goes on; 'capcheck wait %s' resumes waiting)", id, id)
	}
	return st, err
}

// checkOut checks that the output files can be written under out (creating
// it if missing): a usage error that says what to fix otherwise.
func checkOut(out string) error {
	if err := outfiles.CheckWritable(out); err != nil {
		return usageErrorf("--out %s is not a folder this process can write files in (%v): "+
			"point --out, CAPCHECK_OUT or out: in the config file at one, or fix its permissions", out, err)
	}
	return nil
}

// retryHint says how to send a job's failed numbers again on a shared Redis.
func retryHint(id string) string {
	return fmt.Sprintf("'capcheck retry %s' sends them again (a worker must be running, or run the same 'capcheck run' again)", id)
}

// finished prints a finished job's outcome and returns the error that sets
// the exit code the README gives it. again says how to send failed numbers again.
func finished(w io.Writer, st *jobstatus.Status, outDir, again string) error {
	fmt.Fprintf(w, "job %s %s: %d accepted, %d rejected, %d failed; %d rows rejected before the API\n",
		st.Job, st.State, st.Numbers.Accepted, st.Numbers.Rejected, st.Numbers.Failed,
		st.Rejects.Invalid+st.Rejects.Missing+st.Rejects.Malformed+st.Rejects.Duplicates)
	if c := st.Callbacks; c != nil {
		fmt.Fprintf(w, "capabilities: %d capable, %d not capable, %d unknown, %d without a callback\n",
			c.Capable, c.NotCapable, c.Unknown, c.Awaited)
	}
	fmt.Fprintf(w, "results: %s\n", filepath.Join(outfiles.Dir(outDir, st.Job), outfiles.ResultsCSV))
	fmt.Fprintf(w, "report: %s\n", outfiles.ReportPath(outDir, st.Job))
	switch {
	case st.State == string(jobstore.FailedJob):
		return fmt.Errorf("job %s failed: %s%s; once fixed, %s", st.Job, st.StoppedBecause, settingsHint(st.StoppedBecause), again)
	case st.Numbers.Failed > 0:
		return &failedNumbersError{Job: st.Job, Failed: st.Numbers.Failed, Again: again}
	}
	return nil
}

// settingsHint names the options behind the settings a job's stop reason
// asks to check ("check the API key"): the worker speaks of settings, the
// operator sets flags.
func settingsHint(reason string) string {
	var flags []string
	for _, s := range []struct{ setting, flags string }{
		{"the API URL", "--api-url"},
		{"the SID", "--sid"},
		{"the API key", "--api-key-file or --api-key"},
	} {
		if strings.Contains(reason, s.setting) {
			flags = append(flags, s.flags)
		}
	}
	if len(flags) == 0 {
		return ""
	}
	return " (check " + strings.Join(flags, " and ") + ")"
}
