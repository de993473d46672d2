// Package report makes a job's report: one self-contained HTML page (no
// network, no JavaScript) that says how the job went — its outcome and exit
// code, its counts, its request rate against the fleet limit with 429s and
// retries, its callbacks over time, capability by country calling code and
// operator, changes since the previous job of the list, and where the time
// went — with plots drawn by gonum.org/v1/plot and inlined as SVG.
//
// The report is drawn from aggregates only (the job record, its time series
// and a Tally of its numbers made while results.csv is written), so it is
// written in milliseconds whatever the job's size.
package report

import (
	"time"

	"github.com/capcheck/capcheck/jobstore"
)

// Point is a count over [T, T+W) seconds (Unix time).
type Point struct {
	T int64 `json:"t"`
	W int64 `json:"w"`
	N int64 `json:"n"`
}

// Group counts the numbers of a country calling code or an operator.
type Group struct {
	// Key is "+CC" for a country, "+CC prefix" for an operator.
	Key string `json:"key"`
	// Name is the regions of a country code or the operator's name.
	Name       string `json:"name"`
	Numbers    int64  `json:"numbers"`
	Accepted   int64  `json:"accepted"`
	Cached     int64  `json:"cached,omitempty"`
	Capable    int64  `json:"capable"`
	NotCapable int64  `json:"not_capable"`
	NoCallback int64  `json:"no_callback"`
	Unknown    int64  `json:"unknown,omitempty"`
	// Prefixes are an operator's number prefixes in libphonenumber's
	// carrier data (a few, then how many more).
	Prefixes string `json:"prefixes,omitempty"`

	prefixes map[int]bool
}

// Changes are the capability changes since the previous job of the list.
type Changes struct {
	Total int64 `json:"total"`
	// ByKind counts "before → after" pairs.
	ByKind map[string]int64 `json:"by_kind,omitempty"`
}

// Numbers is what the report shows that is drawn from the job's numbers:
// made by a Tally while results.csv is written, stored with the job.
type Numbers struct {
	Results      map[string]int64 `json:"results"`
	Capabilities map[string]int64 `json:"capabilities,omitempty"`
	Callbacks    []Point          `json:"callbacks,omitempty"`
	ByCountry    []Group          `json:"by_country,omitempty"`
	ByOperator   []Group          `json:"by_operator,omitempty"`
	// OperatorNote says why ByOperator is empty or partial.
	OperatorNote string   `json:"operator_note,omitempty"`
	Changes      *Changes `json:"changes,omitempty"`
	// LastChecked is the time of the last API answer (Unix ms).
	LastChecked int64 `json:"last_checked,omitempty"`
	// WrittenAt is when the files were written (Unix ms).
	WrittenAt int64 `json:"written_at,omitempty"`
}

// Data is everything a report shows.
type Data struct {
	Job    *jobstore.Job
	Series *jobstore.Series
	*Numbers
	// Callback counts of a job that waited for callbacks (nil otherwise).
	CallbacksReceived, CallbacksDuplicate int64
	WaitedForCallbacks                    bool
	// Generated is when the report was made.
	Generated time.Time
}

// Phase is one stage of the job and how long it took.
type Phase struct {
	Name     string
	Start    time.Time
	Duration time.Duration
	Known    bool
}

// Phases returns the job's stages: enqueue, sending, awaiting callbacks
// and finalize.
func (d *Data) Phases() []Phase {
	j := d.Job
	last := time.Time{}
	if d.Numbers != nil && d.LastChecked > 0 {
		last = time.UnixMilli(d.LastChecked).UTC()
	}
	span := func(name string, a, b time.Time) Phase {
		if a.IsZero() || b.IsZero() || b.Before(a) {
			return Phase{Name: name, Start: a}
		}
		return Phase{Name: name, Start: a, Duration: b.Sub(a), Known: true}
	}
	finEnd := j.FinishedAt
	if finEnd.IsZero() && d.Numbers != nil && d.WrittenAt > 0 {
		finEnd = time.UnixMilli(d.WrittenAt).UTC()
	}
	awaitEnd := j.FinalizingAt
	ph := []Phase{
		span("enqueue", j.CreatedAt, j.EnqueuedAt),
		span("sending", j.StartedAt, last),
		span("awaiting callbacks", j.AwaitAt, awaitEnd),
		span("finalize", j.FinalizingAt, finEnd),
	}
	if j.CallbackWait <= 0 {
		ph[2] = Phase{Name: "awaiting callbacks", Known: true} // none: the job waited for no callbacks
	}
	return ph
}

// Outcome is the job's outcome in one line and the exit code that wait and
// run give for it.
func (d *Data) Outcome() (line string, code int, meaning string) {
	j := d.Job
	failed := j.Failed
	if d.Numbers != nil {
		failed = d.Results[string(jobstore.Failed)]
	}
	switch {
	case !j.State.Finished() && j.State != jobstore.Finalizing:
		return "Job " + j.ID + " is " + string(j.State) + ": not finished yet", -1, "no exit code yet"
	case j.State == jobstore.FailedJob:
		return "Job " + j.ID + " was stopped: " + j.Abort, 1, "runtime error: the job was stopped (its remaining numbers ended failed)"
	case failed > 0:
		return "Job " + j.ID + " finished; " + itoa(failed) + " numbers ended failed", 3,
			"the job finished but some numbers ended failed ('capcheck retry " + j.ID + "' sends them again)"
	default:
		return "Job " + j.ID + " finished: every number was checked", 0, "success"
	}
}
