// Package configs is the one typed configuration of capcheck.
//
// Every option has a flag (--api-url), an environment variable (CAPCHECK_ +
// the flag's name upper-cased with - as _: CAPCHECK_API_URL) and a key in the
// YAML file named by --config (api_url). The mock-api options are the one
// exception: their variables start with CAPCHECK_MOCK_API_ and their keys sit
// in a mock_api: section, because mock-api's --rate means something else than
// the API client's --rate.
//
// A command lists the flag groups it accepts ([SharedFlags], [APIFlags], ...),
// calls [Load] in its action and then [Config.Validate] with the [Needs] of
// the command. Load resolves each option the command accepts with the
// precedence flag > environment > file > default.
package configs

import (
	"cmp"
	"log/slog"
	"net/netip"
	"time"

	"github.com/capcheck/capcheck/callbacks"
	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/mockapi"
	"github.com/capcheck/capcheck/outfiles"
	"github.com/capcheck/capcheck/phonenorm"
	"github.com/capcheck/capcheck/redisconn"
	"github.com/capcheck/capcheck/worker"
)

// LogFormat is the format of log lines on standard error.
type LogFormat string

// Log formats.
const (
	LogFormatText LogFormat = "text"
	LogFormatJSON LogFormat = "json"
)

// WireFormat is how numbers are written in API requests.
type WireFormat string

// Wire formats.
const (
	// WireFormatDigits sends country code and digits, no '+' (9198XXXXXXXX),
	// as in the provider's examples.
	WireFormatDigits WireFormat = "digits"
	// WireFormatE164 sends E.164 with a leading '+' (+9198XXXXXXXX).
	WireFormatE164 WireFormat = "e164"
)

// Defaults owned by no other package. The others are constants of the
// package that uses the option: outfiles.DirDefault, capapi.BaseURLDefault,
// capapi.TimeoutDefault, worker.BatchSizeDefault, worker.MaxAttemptsDefault,
// worker.ConcurrencyDefault, worker.ShutdownTimeoutDefault,
// phonenorm.DefaultRegionDefault, enqueue.ChunkSizeDefault,
// mockapi.ListenDefault, mockapi.MaxBatchDefault, callbacks.HeaderDefault,
// NumberFieldDefault, StatusFieldDefault, CapableDefault and
// NotCapableDefault. Options not listed default to their zero value.
const (
	RedisDefault      = "redis://127.0.0.1:6379/0"
	LogFormatDefault  = LogFormatText
	LogLevelDefault   = slog.LevelInfo
	WireFormatDefault = WireFormatDigits
	// RateDefault is the fleet's API requests per second.
	RateDefault = 10.0
	// RetentionDefault is how long the commands keep a finished job's
	// records; worker.Config's zero Retention keeps them for ever.
	RetentionDefault = 7 * 24 * time.Hour
	// ForgetAfterDefault is how long the capability memory keeps a number.
	ForgetAfterDefault = 90 * 24 * time.Hour
	// MockCapableFractionDefault is the share of numbers mock-api reports
	// capable; mockapi.Config's zero CapableFraction reports none.
	MockCapableFractionDefault = 0.5
)

// Config is the configuration of every capcheck command. A command fills
// only the groups whose flags it accepts; the others keep their defaults.
// It has an unexported field (where each value came from, for messages):
// compare Configs in tests with cmpopts.IgnoreUnexported(configs.Config{}).
type Config struct {
	// ConfigFile is the YAML file the configuration was read from, "" when
	// none. Set by --config or CAPCHECK_CONFIG (not by the file itself).
	ConfigFile string

	// Redis is the Redis URL, in a form asynq.ParseRedisURI accepts
	// (redis://, rediss://, redis-socket://, redis-sentinel://) or
	// redis-cluster://HOST:PORT[,HOST:PORT...] (see redisconn.Parse). It may
	// hold a password: print it with redact.URL. Defaults to RedisDefault.
	Redis string

	// RedisWait is how long a command waits at start for a Redis that does
	// not answer yet (started after capcheck, or failing over), retrying
	// with backoff and logging what it waits for; 0 fails at once. Defaults
	// to redisconn.StartupWaitDefault (5 minutes).
	RedisWait time.Duration

	// RedisExplicit reports whether Redis was set by a flag, the environment
	// or the config file. capcheck run uses an embedded Redis when it is
	// false. Defaults to false.
	RedisExplicit bool

	// Out is the directory under which each job's output files are written
	// ({Out}/{job}/). Defaults to outfiles.DirDefault.
	Out string

	// OutExplicit reports whether Out was set by a flag, the environment or
	// the config file. A worker writes a job's files only then (its --out is
	// a folder meant to be shared); wait, run and export always write them.
	// Defaults to false.
	OutExplicit bool

	// LogFormat is the format of log lines on standard error. Defaults to
	// LogFormatDefault.
	LogFormat LogFormat

	// LogLevel is the lowest level logged. Defaults to LogLevelDefault.
	LogLevel slog.Level

	API      API
	Enqueue  Enqueue
	Worker   Worker
	MockAPI  MockAPI
	Callback Callback
	Memory   Memory
	Report   Report

	// origins records where Load found each option it set, for messages.
	origins map[*option]origin
}

// API configures the capability-check API client.
type API struct {
	// URL is the provider's regional base URL, without a trailing slash.
	// Defaults to capapi.BaseURLDefault.
	URL string

	// SID is the account SID. Required by the commands that call the API.
	SID string

	// Key is the API key, from --api-key or the content of KeyFile.
	// Required by the commands that call the API.
	Key Secret

	// KeyFile is the file the key was read from (content trimmed), "" when
	// the key came from --api-key.
	KeyFile string

	// CallbackProfileID is sent with every request; the provider delivers
	// per-number results to that profile's URL. Defaults to "" (not sent).
	CallbackProfileID string

	// WireFormat is how numbers are written in requests. Defaults to
	// WireFormatDefault.
	WireFormat WireFormat

	// BatchSize is the number of numbers per API request. Defaults to
	// worker.BatchSizeDefault.
	BatchSize int

	// Rate is the API requests per second for the whole fleet of workers.
	// Defaults to RateDefault.
	Rate float64

	// Timeout bounds one API request. Defaults to capapi.TimeoutDefault.
	Timeout time.Duration

	// MaxAttempts is how many times a request is tried on transient errors
	// before its numbers end failed (429s do not count). Defaults to
	// worker.MaxAttemptsDefault.
	MaxAttempts int
}

// Enqueue configures reading a list and enqueuing it.
type Enqueue struct {
	// Input is the list to read: a path ("-" is standard input; ".gz" is
	// read decompressed). Required by enqueue and run.
	Input string

	// Column selects the CSV column holding numbers: a header name or a
	// 1-based index. Defaults to "" (the enqueue package picks).
	Column string

	// DefaultRegion is the region (ISO 3166 alpha-2, upper case) for numbers
	// without a country code. Defaults to phonenorm.DefaultRegionDefault.
	DefaultRegion string

	// Job is the job ID (see jobstore.JobIDRule). Defaults to "" (one is
	// generated).
	Job string

	// ChunkSize is the number of numbers per task, at most
	// enqueue.MaxChunkSize. Defaults to enqueue.ChunkSizeDefault.
	ChunkSize int

	// CallbackWait is how long a job waits, after its last API answer, for
	// the callbacks of its accepted numbers; 0 means it does not wait.
	// Defaults to 0.
	CallbackWait time.Duration

	// RecheckAfter: a number whose remembered answer (capability memory)
	// is newer than this is not sent; results.csv gives it as cached. 0
	// sends every number. Defaults to 0.
	RecheckAfter time.Duration
}

// Memory configures the capability memory: every answer remembered per
// number, across jobs.
type Memory struct {
	// ForgetAfter bounds how long an answer is remembered: older ones are
	// ignored and swept. 0 keeps them forever. Defaults to
	// ForgetAfterDefault (90 days).
	ForgetAfter time.Duration
}

// Worker configures a worker process.
type Worker struct {
	// Concurrency is the number of chunks one worker processes at once.
	// Defaults to worker.ConcurrencyDefault.
	Concurrency int

	// MetricsAddr is the address of the Prometheus /metrics listener, e.g.
	// ":9090". Defaults to "" (off).
	MetricsAddr string

	// ShutdownTimeout bounds the drain of in-flight work on SIGTERM.
	// Defaults to worker.ShutdownTimeoutDefault.
	ShutdownTimeout time.Duration

	// Retention is how long a finished job's records stay in Redis (for
	// status, retry and export); 0 keeps them until deleted by hand.
	// Defaults to RetentionDefault (7 days).
	Retention time.Duration
}

// Callback configures the receiver of the provider's callbacks (capcheck
// callbacks, run --callback-listen) and what mock-api sends them with.
type Callback struct {
	// Listen is the address callbacks are received on. Required by
	// capcheck callbacks; run starts no receiver when empty. Defaults to "".
	Listen string

	// Token is the shared secret the callback profile sends, from
	// --callback-token or the content of TokenFile. Required unless Listen
	// is a loopback address.
	Token Secret

	// TokenFile is the file the token was read from, "" when it came from
	// --callback-token.
	TokenFile string

	// Header is the request header carrying the token (its value: the
	// token, or "Bearer " and the token). Defaults to CallbackHeaderDefault.
	Header string

	// NumberField and StatusField are dot paths to a callback's number and
	// status. Default to CallbackNumberFieldDefault and
	// CallbackStatusFieldDefault.
	NumberField, StatusField string

	// Capable and NotCapable are the status values (any case) read as
	// capable and not capable; others are unknown. Default to
	// CallbackCapableDefault and CallbackNotCapableDefault.
	Capable, NotCapable []string

	// Allow lists the networks (CIDR, masked) callbacks may come from;
	// empty allows any. Defaults to empty.
	Allow []string

	// TLSCert and TLSKey make the receiver serve HTTPS. Default to "" (plain
	// HTTP, TLS terminated in front).
	TLSCert, TLSKey string
}

// AllowPrefixes returns Allow parsed (Load has checked it).
func (cb Callback) AllowPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(cb.Allow))
	for _, s := range cb.Allow {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// ReportFormat is what capcheck report writes.
type ReportFormat string

// Report formats.
const (
	ReportHTML ReportFormat = "html" // report.html, the whole report
	ReportPNG  ReportFormat = "png"  // report.png, the request-rate plot

	ReportFormatDefault = ReportHTML
)

// Report configures capcheck report.
type Report struct {
	// Format is what it writes. Defaults to ReportFormatDefault.
	Format ReportFormat
}

// MockAPI configures the simulator behind capcheck mock-api: where it
// listens, and mockapi's own Config, whose fields and defaults mockapi
// documents (CapableFraction defaults to MockCapableFractionDefault here).
// Config's credentials, callback token and header and logger are not set
// here: capcheck mock-api takes them from API, Callback and the log options.
type MockAPI struct {
	// Listen is the address to listen on. Defaults to mockapi.ListenDefault.
	Listen string

	mockapi.Config
}

// WithDefaults returns c with its zero fields set to their defaults.
// Fields whose zero value is meaningful (MockAPI.Rate, Worker.Retention, ...)
// keep it: see Defaults.
func (c Config) WithDefaults() Config {
	c.Redis = cmp.Or(c.Redis, RedisDefault)
	c.Out = cmp.Or(c.Out, outfiles.DirDefault)
	c.LogFormat = cmp.Or(c.LogFormat, LogFormatDefault)
	c.LogLevel = cmp.Or(c.LogLevel, LogLevelDefault)
	c.API.URL = cmp.Or(c.API.URL, capapi.BaseURLDefault)
	c.API.WireFormat = cmp.Or(c.API.WireFormat, WireFormatDefault)
	c.API.BatchSize = cmp.Or(c.API.BatchSize, worker.BatchSizeDefault)
	c.API.Rate = cmp.Or(c.API.Rate, RateDefault)
	c.API.Timeout = cmp.Or(c.API.Timeout, capapi.TimeoutDefault)
	c.API.MaxAttempts = cmp.Or(c.API.MaxAttempts, worker.MaxAttemptsDefault)
	c.Enqueue.DefaultRegion = cmp.Or(c.Enqueue.DefaultRegion, phonenorm.DefaultRegionDefault)
	c.Enqueue.ChunkSize = cmp.Or(c.Enqueue.ChunkSize, enqueue.ChunkSizeDefault)
	c.Worker.Concurrency = cmp.Or(c.Worker.Concurrency, worker.ConcurrencyDefault)
	c.Worker.ShutdownTimeout = cmp.Or(c.Worker.ShutdownTimeout, worker.ShutdownTimeoutDefault)
	c.MockAPI.Listen = cmp.Or(c.MockAPI.Listen, mockapi.ListenDefault)
	c.Report.Format = cmp.Or(c.Report.Format, ReportFormatDefault)
	c.MockAPI.MaxBatch = cmp.Or(c.MockAPI.MaxBatch, mockapi.MaxBatchDefault)
	c.Callback.Header = cmp.Or(c.Callback.Header, callbacks.HeaderDefault)
	c.Callback.NumberField = cmp.Or(c.Callback.NumberField, callbacks.NumberFieldDefault)
	c.Callback.StatusField = cmp.Or(c.Callback.StatusField, callbacks.StatusFieldDefault)
	if c.Callback.Capable == nil {
		c.Callback.Capable = callbacks.CapableDefault
	}
	if c.Callback.NotCapable == nil {
		c.Callback.NotCapable = callbacks.NotCapableDefault
	}
	return c
}

// Defaults returns the configuration of an empty command line: WithDefaults,
// plus the defaults whose zero value means something else (a Retention of 0
// keeps finished jobs, a RedisWait of 0 does not wait).
func Defaults() *Config {
	d := Config{}.WithDefaults()
	d.RedisWait = redisconn.StartupWaitDefault
	d.Worker.Retention = RetentionDefault
	d.Memory.ForgetAfter = ForgetAfterDefault
	d.MockAPI.CapableFraction = MockCapableFractionDefault
	return &d
}
