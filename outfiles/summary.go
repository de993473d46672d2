package outfiles

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/report"
)

// Summary is summary.json: what a job did, in numbers.
type Summary struct {
	Job    string `json:"job"`
	Input  string `json:"input"`
	State  string `json:"state"`
	Gen    int    `json:"generation"`
	Reason string `json:"stopped_because,omitempty"`

	Rows int64 `json:"rows"`
	// Results counts results.csv lines by status.
	Results map[string]int64 `json:"results"`
	// Rejects counts rejects.csv lines by reason: invalid, missing,
	// malformed, duplicates (every "duplicate of row N"), as status does.
	Rejects map[string]int64 `json:"rejects"`

	// Attempts is the number of API calls the numbers of results.csv were part
	// of, added up over the numbers (429s excluded).
	Attempts    int64 `json:"attempts"`
	Requests    int64 `json:"requests"`
	RateLimited int64 `json:"rate_limited_429s"`
	Retries     int64 `json:"retries"`

	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at"`
	// EnqueueSeconds is from job creation to every chunk enqueued.
	EnqueueSeconds float64 `json:"enqueue_seconds"`
	// CheckSeconds is from the first API call to the last recorded outcome.
	CheckSeconds float64 `json:"check_seconds"`
	// TotalSeconds is from job creation to the files being written.
	TotalSeconds float64 `json:"total_seconds"`
	// RequestsPerSecond is Requests over CheckSeconds: the rate achieved.
	RequestsPerSecond float64 `json:"requests_per_second"`

	// Capabilities counts results.csv lines by capability (capable,
	// not_capable, unknown, no_callback); only for a job that waited for
	// callbacks.
	Capabilities map[string]int64 `json:"capabilities,omitempty"`
	// RememberedRejections counts the results.csv lines of status rejected
	// that the memory answered (not sent); only when there are.
	RememberedRejections int64 `json:"remembered_rejections,omitempty"`
	// Changes counts changes.csv lines: numbers whose capability differs
	// from what the memory held before the job.
	Changes int64 `json:"changes"`

	// Callbacks are the job's callback counts: received (numbers
	// answered), duplicates, by capability, the fleet's unsolicited and
	// refused callbacks while the job ran, and the status values read as
	// unknown; only for a job that waited for callbacks.
	Callbacks *capstore.JobCounts `json:"callbacks,omitempty"`

	lastChecked int64
	tally       *report.Tally // counts for the report; nil for none
	// results and caps count into Results and Capabilities; finish
	// adds their last runs.
	results, caps report.RunCounts
}

func newSummary(j *jobstore.Job) *Summary {
	sum := &Summary{
		Job: j.ID, Input: j.Input, Gen: j.Gen, Reason: j.Abort, Rows: j.Rows,
		Results: map[string]int64{string(jobstore.Accepted): 0, string(jobstore.Rejected): 0, string(jobstore.Failed): 0},
		Rejects: map[string]int64{
			"invalid": j.Invalid, "missing": j.Missing, "malformed": j.Malformed, "duplicates": j.Duplicates,
		},
		Requests: j.Requests, RateLimited: j.RateLimited, Retries: j.Retries,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt,
	}
	if j.Cached > j.CachedRejected {
		sum.Results[string(jobstore.Cached)] = 0
	}
	sum.results.M = sum.Results
	return sum
}

func (s *Summary) add(number string, o jobstore.Outcome, c capability) {
	if s.tally != nil {
		s.tally.Add(number, string(o.Status), c.name, c.unix, o.CheckedAt)
	}
	capability := c.name
	s.results.Add(string(o.Status))
	if capability != "" {
		if s.Capabilities == nil {
			s.Capabilities = map[string]int64{"capable": 0, "not_capable": 0, "unknown": 0, NoCallback: 0}
			s.caps.M = s.Capabilities
		}
		s.caps.Add(capability)
	}
	s.Attempts += int64(o.Attempts)
	s.lastChecked = max(s.lastChecked, o.CheckedAt)
}

// cached counts a number the memory answered; add counts its line.
func (s *Summary) cached(o jobstore.Outcome) {
	if o.Status == jobstore.Rejected {
		s.RememberedRejections++
	}
}

func (s *Summary) finish(j *jobstore.Job) {
	s.results.Map()
	if s.caps.M != nil {
		s.caps.Map()
	}
	s.State = string(jobstore.FinalState(j.Abort))
	s.FinishedAt = time.Now().UTC().Truncate(time.Millisecond)
	if !j.EnqueuedAt.IsZero() {
		s.EnqueueSeconds = j.EnqueuedAt.Sub(j.CreatedAt).Seconds()
	}
	if !j.StartedAt.IsZero() && s.lastChecked > 0 {
		s.CheckSeconds = max(time.UnixMilli(s.lastChecked).Sub(j.StartedAt).Seconds(), 0)
		if s.CheckSeconds > 0 {
			s.RequestsPerSecond = float64(s.Requests) / s.CheckSeconds
		}
	}
	s.TotalSeconds = s.FinishedAt.Sub(j.CreatedAt).Seconds()
}

// Current reports whether outDir holds the files of finished job j already:
// its summary.json is of this job (created then), generation and final
// state, and was written by the finalize that finished it (which moved the
// job to its final state only once every file was written). A worker on the
// same disk wrote them: writing them again would only cost the time of it.
func Current(outDir string, j *jobstore.Job) bool {
	if !j.State.Finished() || j.FinalizingAt.IsZero() {
		return false
	}
	b, err := os.ReadFile(filepath.Join(Dir(outDir, j.ID), SummaryJSON))
	if err != nil {
		return false
	}
	var s Summary
	if json.Unmarshal(b, &s) != nil {
		return false
	}
	return s.Job == j.ID && s.Gen == j.Gen && s.State == string(j.State) && s.CreatedAt.Equal(j.CreatedAt) &&
		!s.FinishedAt.Before(j.FinalizingAt) && !s.FinishedAt.After(j.FinishedAt)
}
