package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/jobstatus"
	"github.com/capcheck/capcheck/outfiles"
)

// reportPNG is the PNG of the main plot in {out}/{job}/.
const reportPNG = "report.png"

func reportCommand() *cli.Command {
	return jobCommand(cli.Command{
		Name:  "report",
		Usage: "write a job's report: one HTML page to open in a browser (or, --format png, its request-rate plot)",
		Description: "Writes {out}/{job}/report.html from what the job recorded in Redis: its outcome and exit code,\n" +
			"counts, request rate against the fleet limit with 429s and retries, callbacks over time,\n" +
			"capability by country calling code and operator, changes since the previous job of the list,\n" +
			"and how long each phase took. Finalize and export write it too; this writes it on demand,\n" +
			"on the host that asks. The page is self-contained: no network, no JavaScript.\n" +
			"--format png writes report.png, the request-rate plot, for a chat message.",
		Flags: configs.ReportFlags(),
	}, reportAction)
}

func reportAction(c *cli.Context, s *session, id string) error {
	if s.cfg.Report.Format == configs.ReportHTML {
		path, err := outfiles.WriteReport(c.Context, s.store, id, s.cfg.Out)
		if err != nil {
			return outError(err, s.cfg.Out)
		}
		fmt.Fprintf(c.App.Writer, "wrote %s\n", path)
		return nil
	}
	d, err := outfiles.ReportData(c.Context, s.store, id)
	if err != nil {
		return err
	}
	dir := outfiles.Dir(s.cfg.Out, id)
	if err := os.MkdirAll(dir, outfiles.DirMode); err != nil {
		return outError(err, s.cfg.Out)
	}
	path := filepath.Join(dir, reportPNG)
	if err := outfiles.WriteAtomic(path, func(w io.Writer) error { return d.WritePNG(w) }); err != nil {
		return outError(err, s.cfg.Out)
	}
	fmt.Fprintf(c.App.Writer, "wrote %s\n", path)
	return nil
}

// setReports names, for each finished job of list, its report: the file
// under out when this host has it, else the command that writes it.
func setReports(list []*jobstatus.Status, out string) {
	for _, st := range list {
		if !st.Finished() {
			continue
		}
		path := outfiles.ReportPath(out, st.Job)
		if _, err := os.Stat(path); err == nil {
			st.Report = path
		} else {
			st.Report = "capcheck report " + st.Job
		}
	}
}
