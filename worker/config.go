package worker

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/capcheck/capcheck/outfiles"
)

// Defaults of [Config].
const (
	// ConcurrencyDefault is the default number of chunks one worker handles at once.
	ConcurrencyDefault = 16
	// CallsPerChunkSlot × Concurrency is the default of CallsInFlight: the
	// most a worker's lanes grow to while none of them waits for a permit
	// (its calls' latency, not the fleet's limiter, bounds it: a replica
	// alone, or alone at the end of a job; at 1000/s and 30 ms a call it
	// needs ~33). Up to Concurrency they are added whatever the limiter
	// does; 2 × Concurrency that way made 20 replicas' 640 lanes overrun
	// the fleet's limit (429s in 5 of 10 runs at 1000/s × 10).
	CallsPerChunkSlot = 4
	// BatchSizeDefault is the default number of numbers per API request.
	BatchSizeDefault = 100
	// MaxAttemptsDefault is the default number of calls spent on a range
	// that keeps failing transiently.
	MaxAttemptsDefault = 5
	// ShutdownTimeoutDefault is the default time a draining worker gives
	// in-flight calls before it stops waiting for them.
	ShutdownTimeoutDefault = 30 * time.Second
	// BackoffBaseDefault is the default first backoff after a transient error.
	BackoffBaseDefault = 500 * time.Millisecond
	// BackoffMaxDefault is the default cap of the backoff.
	BackoffMaxDefault = 30 * time.Second
	// PauseDefaultDefault is the default fleet pause after a 429 without
	// Retry-After.
	PauseDefaultDefault = 5 * time.Second
)

// Config configures a [Worker]. The zero value of every field means its
// default; see [Config.WithDefaults].
type Config struct {
	// Concurrency is how many chunk (or finalize) tasks this worker handles
	// at once. Defaults to ConcurrencyDefault (16).
	Concurrency int

	// CallsInFlight bounds this worker's API calls in flight: a chunk has
	// one lane, and more (lanes.go; an extra lane finishes the range it
	// holds, retries included, before it steps back) while the worker has
	// fewer than Concurrency (and CallsInFlight) lanes in all, e.g. while
	// fewer chunks run than the fleet's rate needs, or when a replica is
	// gone; beyond that, up to CallsInFlight, only while none of its lanes
	// waits for a permit. Size the API client's connection pool for it. 1
	// keeps one call in flight per chunk. Defaults to CallsPerChunkSlot ×
	// Concurrency.
	CallsInFlight int

	// BatchSize is how many numbers go in one API request. Defaults to
	// BatchSizeDefault (100).
	BatchSize int

	// MaxAttempts is how many calls a range of numbers gets when the API
	// keeps failing transiently (5xx, timeouts, resets); then its numbers are
	// recorded failed. 429 answers do not count. Defaults to
	// MaxAttemptsDefault (5).
	MaxAttempts int

	// ShutdownTimeout bounds a graceful shutdown: in-flight calls still
	// running after it are canceled and their chunks re-queued. Defaults to
	// ShutdownTimeoutDefault (30s).
	ShutdownTimeout time.Duration

	// OutDir is the directory under which the finalize task writes
	// {OutDir}/{job}/results.csv, rejects.csv and summary.json. Defaults to
	// outfiles.DirDefault ("./out").
	OutDir string

	// NoFiles makes the finalize task write no files: it only moves the job
	// to its final state, and whoever waits for the job (wait, run, export)
	// streams the files from Redis on its own host. Workers then need no
	// shared disk. Defaults to false.
	NoFiles bool

	// BackoffBase is the backoff before the second call of a range after a
	// transient error; it doubles for each further call, with full jitter
	// (a random wait between 0 and the doubled value). Defaults to
	// BackoffBaseDefault (500ms).
	BackoffBase time.Duration

	// BackoffMax caps the backoff. Defaults to BackoffMaxDefault (30s).
	BackoffMax time.Duration

	// PauseDefault is how long a 429 without a Retry-After header pauses
	// the fleet. Defaults to PauseDefaultDefault (5s).
	PauseDefault time.Duration

	// Retention is how long a finished job's records stay in Redis after
	// its files are written; 0 keeps them. Defaults to 0.
	Retention time.Duration

	// ForgetAfter: once a day one worker of the fleet drops the capability
	// memory's answers older than this. Defaults to 0 (no sweep).
	ForgetAfter time.Duration

	// Logger receives the worker's logs, with job, chunk and attempt
	// attributes, and asynq's own logs. Defaults to slog.Default().
	Logger *slog.Logger

	// Metrics receives the worker's Prometheus metrics. Defaults to
	// NewMetrics(nil): metrics kept but registered nowhere.
	Metrics *Metrics
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.Concurrency = cmp.Or(c.Concurrency, ConcurrencyDefault)
	c.CallsInFlight = cmp.Or(c.CallsInFlight, CallsPerChunkSlot*c.Concurrency)
	c.BatchSize = cmp.Or(c.BatchSize, BatchSizeDefault)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, MaxAttemptsDefault)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, ShutdownTimeoutDefault)
	c.OutDir = cmp.Or(c.OutDir, outfiles.DirDefault)
	c.BackoffBase = cmp.Or(c.BackoffBase, BackoffBaseDefault)
	c.BackoffMax = cmp.Or(c.BackoffMax, BackoffMaxDefault)
	c.PauseDefault = cmp.Or(c.PauseDefault, PauseDefaultDefault)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	return c
}

// Validate reports every problem with c (errors.Join), in words that say
// what to fix. It expects defaults to be filled in already.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("worker: "+format, args...)) }
	if c.Concurrency < 1 {
		bad("concurrency must be at least 1, got %d", c.Concurrency)
	}
	if c.CallsInFlight < 1 {
		bad("calls in flight must be at least 1, got %d", c.CallsInFlight)
	}
	if c.BatchSize < 1 {
		bad("batch size must be at least 1, got %d", c.BatchSize)
	}
	if c.MaxAttempts < 1 {
		bad("max attempts must be at least 1, got %d", c.MaxAttempts)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown timeout must be positive, got %s", c.ShutdownTimeout)
	}
	if c.OutDir == "" {
		bad("the output directory is empty: name one")
	}
	switch {
	case c.BackoffBase <= 0 || c.BackoffMax <= 0:
		bad("backoff base and max must be positive, got %s and %s", c.BackoffBase, c.BackoffMax)
	case c.BackoffMax < c.BackoffBase:
		bad("backoff max (%s) must not be below backoff base (%s)", c.BackoffMax, c.BackoffBase)
	}
	if c.PauseDefault <= 0 {
		bad("default 429 pause must be positive, got %s", c.PauseDefault)
	}
	if c.Retention < 0 {
		bad("retention must be >= 0 (0 keeps finished jobs), got %s", c.Retention)
	}
	if c.ForgetAfter < 0 {
		bad("forget-after must be >= 0, got %s", c.ForgetAfter)
	}
	return errors.Join(errs...)
}
