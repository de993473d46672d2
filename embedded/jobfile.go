package embedded

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/outfiles"
)

// jobFileName, next to a job's journal, holds the spec (input fingerprint,
// chunk size) of the job that wrote the journal. Without it a run under the
// same job ID on another list would replay the outcomes of the earlier list
// onto the rows of the new one, and report numbers never sent as checked.
const jobFileName = "journal-job.json"

// jobFile is the content of jobFileName.
type jobFile struct {
	jobstore.Spec
	// Target is what the journaled calls were sent to.
	Target string `json:"target"`
	// Created is when the job was first created, by the first run.
	Created time.Time `json:"created,omitzero"`
}

// maxJobFile bounds what is read of a spec file (a few hundred bytes).
const maxJobFile = 1 << 20

// TargetError is returned by Resume for a job whose journal holds answers
// from another target than the run's: replaying it would report numbers as
// checked by an API that never saw them.
type TargetError struct {
	Dir    string // the job's folder
	Job    string
	Saved  string // the target of the journal
	Target string // the run's
}

func (e *TargetError) Error() string {
	return fmt.Sprintf("%s holds job %s as checked against %s, not %s", e.Dir, e.Job, e.Saved, e.Target)
}

// readJobFile reads the spec file of job id under out; nil when there is none.
func readJobFile(out, id string) (*jobFile, string, error) {
	path := filepath.Join(outfiles.Dir(out, id), jobFileName)
	f, err := openNoFollow(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("reading the job of an earlier run: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJobFile))
	if err != nil {
		return nil, path, fmt.Errorf("reading the job of an earlier run: %w", err)
	}
	var saved jobFile
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, path, fmt.Errorf("reading %s: %w (move it away)", path, err)
	}
	return &saved, path, nil
}

// saveJob writes the spec of job id and the run's target next to its
// journal, before anything is journaled, for Restore; see TargetError. It
// returns when the job was first created (by the first run in the folder).
func (r *Run) saveJob(ctx context.Context, id string) (time.Time, error) {
	saved, path, err := readJobFile(r.cfg.Out, id)
	if err != nil {
		return time.Time{}, err
	}
	if saved != nil && saved.Target != "" && saved.Target != r.cfg.Target {
		answers, err := hasAnswers(r.journal.path(id))
		if err != nil {
			return time.Time{}, err
		}
		if answers {
			return time.Time{}, &TargetError{Dir: outfiles.Dir(r.cfg.Out, id), Job: id, Saved: saved.Target, Target: r.cfg.Target}
		}
	}
	j, err := r.store.Job(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	created := j.CreatedAt
	if saved != nil && !saved.Created.IsZero() && saved.Created.Before(created) {
		created = saved.Created
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return time.Time{}, err
	}
	// A temporary file renamed over path: a link at path is replaced, not
	// followed.
	return created, outfiles.WriteAtomic(path, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(jobFile{Spec: j.Spec, Target: r.cfg.Target, Created: created})
	})
}

// hasAnswers reports whether a journal records numbers the API accepted or
// rejected: one that holds only failures (a wrong API URL, say) may be
// resumed against another target, since failures are sent again.
func hasAnswers(path string) (bool, error) {
	f, err := openNoFollow(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var e entry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Outcome != nil && e.Outcome.Final() && !e.Outcome.Redriven() {
			return true, nil
		}
	}
	return false, nil
}
