package enqueue

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/listreader"
	"github.com/capcheck/capcheck/outfiles"
	"github.com/capcheck/capcheck/phonenorm"
)

// Defaults of Config.
const (
	LockTTLDefault = 30 * time.Second
	// MaxChunkSize bounds ChunkSize: a chunk is one Redis value and one task.
	MaxChunkSize = 100_000
)

// Config configures Run.
type Config struct {
	// Input is the path of the list, "-" for standard input. A gzip file
	// (by its magic bytes) is read decompressed. Required unless Reader is
	// set.
	Input string
	// Reader, when set, is read instead of opening Input, which then only
	// names it. Defaults to none.
	Reader io.Reader
	// Stdin is what Input "-" reads. Defaults to os.Stdin.
	Stdin io.Reader

	// Column selects the CSV column: a header name or a 1-based index.
	// Defaults to the one column that looks like a phone column (see
	// listreader.Config.Column).
	Column string
	// DefaultRegion is the region of numbers without a country code.
	// Defaults to phonenorm.DefaultRegionDefault ("IN").
	DefaultRegion string
	// JobID names the job. Defaults to an ID derived from the input file
	// and the options, "<name>-<mtime YYYYMMDD>-<8 hex>", so that the same
	// nightly command on the same file resumes the same job; standard input
	// gets a fresh ID (and a warning: a re-run cannot resume it). A job given
	// here for standard input is resumed only with the same content (see
	// Run).
	JobID string
	// ChunkSize is the number of numbers per chunk task. Defaults to
	// ChunkSizeDefault (1000).
	ChunkSize int
	// CallbackWait is how long the job waits, after its last API answer,
	// for the provider's callbacks of its accepted numbers (state
	// awaiting_callbacks). Defaults to 0: the job waits for none.
	CallbackWait time.Duration
	// Memory is the capability memory: what it holds of each number is
	// noted for changes.csv, and with RecheckAfter a recent answer is used
	// instead of sending the number. Defaults to none (every number is
	// sent, nothing is noted).
	Memory Memory
	// RecheckAfter: a number whose remembered answer was received less
	// than this before the job was created is not sent (results.csv status
	// cached, or rejected for a remembered rejection). Defaults to 0: every
	// number is sent.
	RecheckAfter time.Duration
	// ForgetAfter: a remembered answer older than this is ignored, as the
	// memory's sweep would drop it. Defaults to 0 (no bound).
	ForgetAfter time.Duration
	// OutDir is where {job}/rejects.csv is written. Defaults to
	// outfiles.DirDefault ("./out").
	OutDir string

	// Store keeps the job in Redis. Required.
	Store *jobstore.Store
	// Client enqueues the chunk tasks. Required.
	Client *asynq.Client

	// Logger receives the summary and warnings. Defaults to slog.Default().
	Logger *slog.Logger
	// Progress is where a progress line is drawn, when it is a terminal.
	// Defaults to none.
	Progress io.Writer
	// Workers is the number of normalizing goroutines. Defaults to
	// GOMAXPROCS.
	Workers int
	// LockTTL is how long the job's lock outlives a process killed without
	// releasing it. Defaults to LockTTLDefault (30s).
	LockTTL time.Duration
	// LockWait is how long to wait for a job held by another process (for
	// instance one just killed, whose lock has not expired yet). Defaults
	// to LockTTL.
	LockWait time.Duration
	// Started, when set, is called once the first chunk is stored and its
	// task enqueued and announced, or once enough rows went by without
	// one (PipelineConfig.Started); not when Run ends before. Defaults to
	// none.
	Started func()

	// afterChunk, when set, is called by the writer once chunk i is
	// stored, enqueued and recorded: tests stop a run at a chunk they
	// choose with it.
	afterChunk func(i int)
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Stdin == nil {
		c.Stdin = os.Stdin
	}
	c.DefaultRegion = strings.ToUpper(cmp.Or(c.DefaultRegion, phonenorm.DefaultRegionDefault))
	c.ChunkSize = cmp.Or(c.ChunkSize, ChunkSizeDefault)
	c.OutDir = cmp.Or(c.OutDir, outfiles.DirDefault)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.LockTTL = cmp.Or(c.LockTTL, LockTTLDefault)
	c.LockWait = cmp.Or(c.LockWait, c.LockTTL)
	return c
}

// Validate says what to fix in c, if anything.
func (c Config) Validate() error {
	var errs []error
	if c.Input == "" && c.Reader == nil {
		errs = append(errs, errors.New("no input: give a path, or - for standard input"))
	}
	if !phonenorm.SupportedRegion(c.DefaultRegion) {
		errs = append(errs, fmt.Errorf("default region %q: use a 2-letter ISO 3166 code such as IN, US or GB", c.DefaultRegion))
	}
	if c.ChunkSize < 1 || c.ChunkSize > MaxChunkSize {
		errs = append(errs, fmt.Errorf("chunk size %d: use 1 to %d", c.ChunkSize, MaxChunkSize))
	}
	if c.JobID != "" {
		if err := jobstore.ValidateJobID(c.JobID); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Store == nil || c.Client == nil {
		errs = append(errs, errors.New("enqueue needs a job store and an asynq client"))
	}
	if c.RecheckAfter < 0 || c.ForgetAfter < 0 {
		errs = append(errs, errors.New("the recheck and forget durations must be >= 0"))
	}
	if c.RecheckAfter > 0 && c.Memory == nil {
		errs = append(errs, errors.New("a recheck duration needs the capability memory"))
	}
	if c.Workers < 0 || c.LockTTL < time.Second {
		errs = append(errs, errors.New("workers must be >= 0 and the lock TTL at least 1s"))
	}
	return errors.Join(errs...)
}

// ErrConfig is wrapped by Run's errors about its configuration or options
// (a bad column, region or job ID; another input under the same job ID):
// the operator has to change the command.
var ErrConfig = errors.New("bad enqueue configuration")

// ErrRetrying is wrapped by Run's error for a job whose re-drive (Redrive)
// did not finish: enqueuing it would mark it enqueued with chunks missing.
var ErrRetrying = errors.New("the job is being retried and the retry did not finish")

// Result says what Run did.
type Result struct {
	JobID string
	// Created is true when this run created the job.
	Created bool
	// AlreadyEnqueued is true when every chunk had been enqueued before:
	// this run enqueued nothing.
	AlreadyEnqueued bool
	// Counts are the per-record counts of the input.
	Counts Counts
	// ChunksEnqueued is the number of chunk tasks this run enqueued.
	ChunksEnqueued int
	// RejectsPath is the rejects.csv written, "" when none was.
	RejectsPath string
	// Format tells how the input was read (zero when it was not read).
	Format listreader.Format
	// Elapsed is the time Run took.
	Elapsed time.Duration
}
