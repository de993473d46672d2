package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/jobstatus"
	"github.com/capcheck/capcheck/ratelimit"
)

// Flags of status, wait, export and retry that shape one invocation's output
// rather than configure capcheck: they have no variable or file key.
const (
	flagJSON     = "json"
	flagWatch    = "watch"
	flagInterval = "interval"
	flagLimit    = "limit"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show the progress of a job, or list recent jobs",
		ArgsUsage: "[JOB]",
		Description: "With JOB: state, counts, chunks, numbers accepted/rejected/failed so far, requests,\n" +
			"429s, retries, the request rate over the last minute, elapsed time and ETA, and\n" +
			"the fleet's pause after a 429 while one holds every job (and when it ends).\n" +
			"Without JOB: recent jobs, one per line, newest first, each finished one with its report\n" +
			"({out}/{job}/report.html when this host has it, else the 'capcheck report JOB' that writes it).\n" +
			"--json prints the same as a stable JSON document (docs/status-json.md).",
		Flags: slices.Concat(configs.SharedFlags(), []cli.Flag{
			&cli.BoolFlag{Name: flagJSON, Usage: "print JSON (fields documented in docs/status-json.md)"},
			&cli.BoolFlag{Name: flagWatch, Usage: "redraw every --interval until the job is finished (or Ctrl-C)"},
			&cli.DurationFlag{Name: flagInterval, Value: 2 * time.Second, Usage: "redraw interval of --watch"},
			&cli.IntFlag{Name: flagLimit, Value: 20, Usage: "how many recent jobs to list without JOB"},
		}),
		Action: statusAction,
	}
}

func statusAction(c *cli.Context) error {
	if c.NArg() > 1 {
		return usageErrorf("status takes at most one JOB argument, got %d", c.NArg())
	}
	id := ""
	if c.NArg() == 1 {
		var err error
		if id, err = jobArg(c); err != nil {
			return err
		}
	}
	if c.Duration(flagInterval) <= 0 {
		return usageErrorf("--interval must be > 0 (got %s)", c.Duration(flagInterval))
	}
	s, err := openSession(c, configs.Needs{})
	if err != nil {
		return err
	}
	defer s.Close()
	store := s.store
	out := c.App.Writer
	redraw := c.Bool(flagWatch) && !c.Bool(flagJSON) && isTerminal(out)

	for {
		var doc any
		finished := false
		if id != "" {
			st, err := jobstatus.Get(c.Context, store, id)
			if err != nil {
				return err
			}
			doc, finished = st, st.Finished()
		} else {
			list, err := jobstatus.List(c.Context, store, c.Int(flagLimit))
			if err != nil {
				return err
			}
			setReports(list, s.cfg.Out)
			doc = list
		}
		showFleetPause(c, s, doc)
		if redraw {
			fmt.Fprint(out, "\x1b[H\x1b[2J") // home, clear screen
		}
		if err := printStatus(out, doc, c.Bool(flagJSON)); err != nil {
			return err
		}
		if !c.Bool(flagWatch) || finished {
			return nil
		}
		select {
		case <-c.Context.Done():
			return nil
		case <-time.After(c.Duration(flagInterval)):
		}
		if !redraw && !c.Bool(flagJSON) {
			fmt.Fprintln(out)
		}
	}
}

// showFleetPause marks the jobs of doc that are not finished with the
// fleet's pause, if one is in force. Not knowing it is no reason to fail.
func showFleetPause(c *cli.Context, s *session, doc any) {
	left, err := ratelimit.FleetPause(c.Context, s.rdb, "")
	if err != nil {
		s.log.Warn("cannot read the fleet's pause", "err", err)
		return
	}
	now := time.Now()
	switch d := doc.(type) {
	case *jobstatus.Status:
		d.SetFleetPause(left, now)
	case []*jobstatus.Status:
		for _, st := range d {
			st.SetFleetPause(left, now)
		}
	}
}

func printStatus(w io.Writer, doc any, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	switch d := doc.(type) {
	case *jobstatus.Status:
		return jobstatus.Render(w, d)
	case []*jobstatus.Status:
		if len(d) == 0 {
			_, err := fmt.Fprintln(w, "no jobs yet; start one with 'capcheck enqueue --input FILE' or 'capcheck run --input FILE'")
			return err
		}
		for _, st := range d {
			if !st.FleetPausedUntil.IsZero() {
				fmt.Fprintln(w, "fleet "+jobstatus.PauseLine(st.FleetPausedUntil))
				break
			}
		}
		return jobstatus.RenderList(w, d)
	}
	return nil
}
