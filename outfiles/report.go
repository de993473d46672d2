package outfiles

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/report"
)

// ReportHTML is the job's report page in {out}/{job}/.
const ReportHTML = "report.html"

// ReportPath returns where a job's report is written.
func ReportPath(outDir, jobID string) string { return filepath.Join(Dir(outDir, jobID), ReportHTML) }

// keepReport stores what the report drew from the job's numbers, then
// writes report.html into dir.
func keepReport(ctx context.Context, s *jobstore.Store, j *jobstore.Job, dir string, nums *report.Numbers) error {
	b, err := json.Marshal(nums)
	if err != nil {
		return err
	}
	if err := s.PutReportData(ctx, j.ID, b); err != nil {
		return err
	}
	d, err := reportData(ctx, s, j, nums)
	if err != nil {
		return err
	}
	return WriteAtomic(filepath.Join(dir, ReportHTML), func(w io.Writer) error { return report.Render(w, d) })
}

// reportData gathers what a report shows besides nums.
func reportData(ctx context.Context, s *jobstore.Store, j *jobstore.Job, nums *report.Numbers) (*report.Data, error) {
	series, err := s.Series(ctx, j.ID)
	if err != nil {
		return nil, err
	}
	d := &report.Data{Job: j, Series: series, Numbers: nums, Generated: time.Now().UTC(),
		WaitedForCallbacks: j.CallbackWait > 0}
	if d.WaitedForCallbacks {
		jc, err := capstore.New(s.Redis(), capstore.Options{}).JobCounts(ctx, j.ID)
		if err != nil {
			return nil, err
		}
		d.CallbacksReceived, d.CallbacksDuplicate = jc.Received, jc.Duplicates
	}
	return d, nil
}

// ReportData returns the report of a finished job: from what its files'
// writing stored, or, when nothing was (a job finalized by an older
// capcheck), by counting its numbers again.
func ReportData(ctx context.Context, s *jobstore.Store, jobID string) (*report.Data, error) {
	if err := jobstore.ValidateJobID(jobID); err != nil {
		return nil, err
	}
	j, err := s.Job(ctx, jobID)
	if err != nil {
		return nil, err
	}
	var nums *report.Numbers
	b, err := s.ReportData(ctx, jobID)
	if err != nil {
		return nil, err
	}
	switch {
	case b != nil:
		nums = &report.Numbers{}
		if err := json.Unmarshal(b, nums); err != nil {
			return nil, fmt.Errorf("job %s: reading its report data: %w", jobID, err)
		}
	case j.State.Finished() || j.State == jobstore.Finalizing:
		sum := newSummary(j)
		sum.tally = report.NewTally()
		mem, err := newMemory(ctx, s, j, io.Discard)
		if err != nil {
			return nil, err
		}
		if err := writeResults(ctx, s, j, io.Discard, CSV, sum, mem); err != nil {
			return nil, err
		}
		nums = sum.tally.Numbers(startOf(j))
		nums.Changes = mem.report()
	}
	return reportData(ctx, s, j, nums)
}

// WriteReport writes {out}/{job}/report.html of a job and returns its path.
func WriteReport(ctx context.Context, s *jobstore.Store, jobID, outDir string) (string, error) {
	d, err := ReportData(ctx, s, jobID)
	if err != nil {
		return "", err
	}
	path := ReportPath(outDir, jobID)
	if err := mkdir(filepath.Dir(path)); err != nil {
		return "", err
	}
	return path, WriteAtomic(path, func(w io.Writer) error { return report.Render(w, d) })
}

// startOf is when the job's first call was sent (Unix s), 0 when none was.
func startOf(j *jobstore.Job) int64 {
	if j.StartedAt.IsZero() {
		return 0
	}
	return j.StartedAt.Unix()
}
