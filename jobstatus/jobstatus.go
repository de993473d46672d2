// Package jobstatus is what capcheck status and wait show of a job: a stable
// JSON document (see docs/status-json.md), its text rendering, and the wait
// loop that blocks until a job is finished.
package jobstatus

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
)

// Status is one job's progress. Its JSON form is a documented interface:
// fields are only ever added.
type Status struct {
	Job   string `json:"job"`
	State string `json:"state"`
	// Report names a finished job's report in the job list: its file, or
	// the command that writes it.
	Report         string    `json:"report,omitempty"`
	StoppedBecause string    `json:"stopped_because,omitempty"`
	Input          string    `json:"input"`
	Generation     int       `json:"generation"`
	Rows           int64     `json:"rows"`
	Valid          int64     `json:"valid"`
	Rejects        Rejects   `json:"rejects"`
	Chunks         Chunks    `json:"chunks"`
	Numbers        Numbers   `json:"numbers"`
	Requests       int64     `json:"requests"`
	RateLimited    int64     `json:"rate_limited_429s"`
	Retries        int64     `json:"retries"`
	RateLastMinute float64   `json:"requests_per_second_last_minute"`
	CreatedAt      time.Time `json:"created_at"`
	StartedAt      time.Time `json:"started_at,omitzero"`
	FinishedAt     time.Time `json:"finished_at,omitzero"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	// ETASeconds estimates the time left from the pace so far; absent while
	// there is no pace to go by, or once finished.
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	// Progress is the share of valid numbers with a final status, 0 to 1.
	Progress float64 `json:"progress"`
	// FleetPausedUntil is when the fleet's pause after a 429 ends, while one
	// holds every job's requests and this job is not finished (see
	// SetFleetPause); absent otherwise.
	FleetPausedUntil time.Time `json:"fleet_paused_until,omitzero"`
	// Changes counts the numbers whose capability differs from what the
	// memory held before the job (changes.csv); known once finished.
	Changes int64 `json:"changes"`
	// Callbacks are the provider's callbacks of the job's accepted numbers
	// so far; only for a job that waits for callbacks (--callback-wait).
	Callbacks *Callbacks `json:"callbacks,omitempty"`
}

// Callbacks is a job's callback progress.
type Callbacks struct {
	// WaitSeconds is the job's --callback-wait.
	WaitSeconds float64 `json:"wait_seconds"`
	// AwaitUntil is when the job stops waiting at the latest; set once it
	// is awaiting_callbacks.
	AwaitUntil time.Time `json:"await_until,omitzero"`
	// Awaited is the accepted numbers still without a callback.
	Awaited int64 `json:"awaited"`
	capstore.JobCounts
}

// SetFleetPause records that the fleet is paused for left from now, on a
// job that is not finished.
func (s *Status) SetFleetPause(left time.Duration, now time.Time) {
	if left > 0 && !s.Finished() {
		s.FleetPausedUntil = now.Add(left).UTC().Truncate(time.Second)
	}
}

// Rejects counts input records that never reach the API, by reason.
type Rejects struct {
	Invalid    int64 `json:"invalid"`
	Missing    int64 `json:"missing"`
	Malformed  int64 `json:"malformed"`
	Duplicates int64 `json:"duplicates"`
}

// Chunks counts the job's chunk tasks.
type Chunks struct {
	Total    int `json:"total"`
	Enqueued int `json:"enqueued"`
	Done     int `json:"done"`
}

// Numbers counts valid numbers by final status so far, as results.csv
// gives them: Rejected counts the remembered rejections too (numbers the
// memory answered with the API's rejection), Cached the other numbers the
// memory answered. Neither kind is sent.
type Numbers struct {
	Accepted             int64 `json:"accepted"`
	Rejected             int64 `json:"rejected"`
	Failed               int64 `json:"failed"`
	Cached               int64 `json:"cached"`
	RememberedRejections int64 `json:"remembered_rejections"`
	Pending              int64 `json:"pending"`
}

// Finished reports whether the job reached a final state.
func (s *Status) Finished() bool { return jobstore.State(s.State).Finished() }

// Get reads the status of job id.
func Get(ctx context.Context, store *jobstore.Store, id string) (*Status, error) {
	j, err := store.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	rate, err := store.Rate(ctx, j)
	if err != nil {
		return nil, err
	}
	s := fromJob(j, rate, time.Now())
	if j.CallbackWait > 0 {
		jc, err := capstore.New(store.Redis(), capstore.Options{}).JobCounts(ctx, id)
		if err != nil {
			return nil, err
		}
		s.Callbacks = &Callbacks{WaitSeconds: j.CallbackWait.Seconds(), AwaitUntil: j.AwaitUntil,
			Awaited: max(j.Accepted-jc.Received, 0), JobCounts: jc}
	}
	return s, nil
}

func fromJob(j *jobstore.Job, rate float64, now time.Time) *Status {
	s := &Status{
		Job: j.ID, State: string(j.State), StoppedBecause: j.Abort, Input: j.Input, Generation: j.Gen,
		Rows: j.Rows, Valid: j.Valid,
		Rejects: Rejects{Invalid: j.Invalid, Missing: j.Missing, Malformed: j.Malformed, Duplicates: j.Duplicates},
		Chunks:  Chunks{Total: j.Chunks, Enqueued: j.ChunksEnqueued, Done: j.ChunksDone},
		Numbers: Numbers{Accepted: j.Accepted, Rejected: j.Rejected + j.CachedRejected, Failed: j.Failed,
			Cached: j.Cached - j.CachedRejected, RememberedRejections: j.CachedRejected},
		Changes:  j.Changes,
		Requests: j.Requests, RateLimited: j.RateLimited, Retries: j.Retries, RateLastMinute: rate,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt,
	}
	s.Numbers.Pending = max(j.Valid-j.Settled(), 0)
	end := now
	if !j.FinishedAt.IsZero() {
		end = j.FinishedAt
	}
	s.ElapsedSeconds = end.Sub(j.CreatedAt).Seconds()
	switch {
	case j.State.Finished():
		s.Progress = 1
	case j.Valid > 0:
		s.Progress = float64(j.Settled()) / float64(j.Valid)
	}
	// The pace is the sent numbers': the cached ones were settled at once.
	if sent := j.Settled() - j.Cached; !j.State.Finished() && !j.StartedAt.IsZero() && sent > 0 && j.State != jobstore.Enqueuing {
		pace := float64(sent) / now.Sub(j.StartedAt).Seconds()
		eta := float64(s.Numbers.Pending) / pace
		s.ETASeconds = &eta
	}
	return s
}

// Render writes s for a person, one field a line.
func Render(w io.Writer, s *Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	p("job", "%s", s.Job)
	state := s.State
	if s.StoppedBecause != "" {
		state += " — " + s.StoppedBecause
	}
	p("state", "%s", state)
	p("input", "%s", s.Input)
	p("rows", "%d (valid %d, invalid %d, missing %d, malformed %d, duplicates %d)",
		s.Rows, s.Valid, s.Rejects.Invalid, s.Rejects.Missing, s.Rejects.Malformed, s.Rejects.Duplicates)
	p("chunks", "%d/%d done", s.Chunks.Done, s.Chunks.Total)
	p("numbers", "%d accepted, %d rejected, %d failed, %d pending (%.1f%%)",
		s.Numbers.Accepted, s.Numbers.Rejected, s.Numbers.Failed, s.Numbers.Pending, 100*s.Progress)
	if n := s.Numbers; n.Cached+n.RememberedRejections > 0 || s.Changes > 0 {
		p("memory", "%d cached, %d remembered rejections (not sent); %d changed capability", n.Cached, n.RememberedRejections, s.Changes)
	}
	p("requests", "%d (429s %d, retries %d), %.1f/s over the last minute", s.Requests, s.RateLimited, s.Retries, s.RateLastMinute)
	if !s.FleetPausedUntil.IsZero() {
		p("fleet", "%s", PauseLine(s.FleetPausedUntil))
	}
	if c := s.Callbacks; c != nil {
		p("callbacks", "%s", c.line())
		if len(c.RawUnknown) > 0 {
			p("unknown values", "%v", c.RawUnknown)
		}
	}
	elapsed := (time.Duration(s.ElapsedSeconds) * time.Second).String()
	if s.ETASeconds != nil {
		elapsed += ", about " + (time.Duration(*s.ETASeconds) * time.Second).String() + " left"
	}
	p("elapsed", "%s", elapsed)
	return tw.Flush()
}

// PauseLine describes a fleet pause that ends at until.
func PauseLine(until time.Time) string {
	left := max(time.Until(until).Round(time.Second), 0)
	return fmt.Sprintf("paused after a 429 until %s (%s left): no job sends requests", until.Local().Format("15:04:05"), left)
}

// RenderList writes one line per job, newest first.
func RenderList(w io.Writer, list []*Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tCREATED\tROWS\tACCEPTED\tREJECTED\tFAILED\tPROGRESS\tREPORT")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%.0f%%\t%s\n", s.Job, s.State, s.CreatedAt.Local().Format("2006-01-02 15:04"),
			s.Rows, s.Numbers.Accepted, s.Numbers.Rejected, s.Numbers.Failed, 100*s.Progress, cmp.Or(s.Report, "-"))
	}
	return tw.Flush()
}

// List returns the status of up to n recent jobs, newest first.
func List(ctx context.Context, store *jobstore.Store, n int) ([]*Status, error) {
	jobs, err := store.ListJobs(ctx, n)
	if err != nil {
		return nil, err
	}
	out := make([]*Status, len(jobs))
	now := time.Now()
	for i, j := range jobs {
		out[i] = fromJob(j, 0, now)
	}
	return out, nil
}

// Line is a one-line summary for logs and progress bars.
func (s *Status) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d/%d numbers (%d accepted, %d rejected, %d failed", s.State, s.Valid-s.Numbers.Pending, s.Valid,
		s.Numbers.Accepted, s.Numbers.Rejected, s.Numbers.Failed)
	if s.Numbers.Cached > 0 {
		fmt.Fprintf(&b, ", %d cached", s.Numbers.Cached)
	}
	fmt.Fprintf(&b, "), chunks %d/%d", s.Chunks.Done, s.Chunks.Total)
	if s.ETASeconds != nil {
		fmt.Fprintf(&b, ", ETA %s", time.Duration(*s.ETASeconds)*time.Second)
	}
	if s.Callbacks != nil {
		b.WriteString("; callbacks " + s.Callbacks.line())
	}
	return b.String()
}

// line is the callback progress in words.
func (c *Callbacks) line() string {
	l := fmt.Sprintf("%d received, %d awaited: %d capable, %d not capable, %d unknown; %d duplicates",
		c.Received, c.Awaited, c.Capable, c.NotCapable, c.Unknown, c.Duplicates)
	if !c.AwaitUntil.IsZero() {
		l += fmt.Sprintf("; waiting until %s at the latest", c.AwaitUntil.Local().Format("15:04:05"))
	}
	return l
}
