package configs

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/callbacks"
	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/mockapi"
	"github.com/capcheck/capcheck/outfiles"
	"github.com/capcheck/capcheck/phonenorm"
	"github.com/capcheck/capcheck/redisconn"
	"github.com/capcheck/capcheck/worker"
)

// Flag names. The mock-api options reuse "rate" with their own meaning (see
// the package doc); every other name is unique.
const (
	FlagConfig    = "config"
	FlagRedis     = "redis"
	FlagRedisWait = "redis-wait"
	FlagOut       = "out"
	FlagLogFormat = "log-format"
	FlagLogLevel  = "log-level"

	FlagAPIURL            = "api-url"
	FlagSID               = "sid"
	FlagAPIKey            = "api-key"
	FlagAPIKeyFile        = "api-key-file"
	FlagCallbackProfileID = "callback-profile-id"
	FlagWireFormat        = "wire-format"
	FlagBatchSize         = "batch-size"
	FlagRate              = "rate"
	FlagTimeout           = "timeout"
	FlagMaxAttempts       = "max-attempts"

	FlagInput         = "input"
	FlagColumn        = "column"
	FlagDefaultRegion = "default-region"
	FlagJob           = "job"
	FlagChunkSize     = "chunk-size"
	FlagCallbackWait  = "callback-wait"
	FlagRecheckAfter  = "recheck-after"

	FlagConcurrency     = "concurrency"
	FlagMetricsAddr     = "metrics-addr"
	FlagShutdownTimeout = "shutdown-timeout"
	FlagRetention       = "retention"

	FlagForgetAfter = "forget-after"

	FlagCallbackListen      = "callback-listen"
	FlagCallbackToken       = "callback-token"
	FlagCallbackTokenFile   = "callback-token-file"
	FlagCallbackHeader      = "callback-header"
	FlagCallbackNumberField = "callback-number-field"
	FlagCallbackStatusField = "callback-status-field"
	FlagCallbackCapable     = "callback-capable"
	FlagCallbackNotCapable  = "callback-not-capable"
	FlagCallbackAllow       = "callback-allow"
	FlagCallbackTLSCert     = "callback-tls-cert"
	FlagCallbackTLSKey      = "callback-tls-key"

	FlagListen       = "listen"
	FlagMockRate     = "rate" // mock-api's own --rate: CAPCHECK_MOCK_API_RATE, mock_api: rate:
	FlagLatency      = "latency"
	FlagJitter       = "jitter"
	FlagFailRate     = "fail-rate"
	FlagResetRate    = "reset-rate"
	FlagRejectSuffix = "reject-suffix"
	FlagMaxBatch     = "max-batch"
	FlagSeed         = "seed"

	FlagCallbackURL           = "callback-url"
	FlagCallbackDelay         = "callback-delay"
	FlagCallbackJitter        = "callback-jitter"
	FlagCallbackDuplicateRate = "callback-duplicate-rate"
	FlagCallbackRefuseRate    = "callback-refuse-rate"
	FlagCapableFraction       = "capable-fraction"
	FlagFlipFraction          = "flip-fraction"

	FlagReportFormat = "format" // report's --format: CAPCHECK_REPORT_FORMAT, report: format:
)

// envPrefix starts every environment variable.
const envPrefix = "CAPCHECK_"

// mockSection is the YAML section (and, upper-cased, the environment infix)
// of the mock-api options.
const mockSection = "mock_api"

// reportSection is the YAML section (and environment infix) of the report
// command's options.
const reportSection = "report"

// Help categories.
const (
	categoryShared   = "Shared"
	categoryAPI      = "API"
	categoryEnqueue  = "Enqueue"
	categoryWorker   = "Worker"
	categoryMockAPI  = "Mock API"
	categoryCallback = "Callbacks"
	categoryMemory   = "Memory"
	categoryReport   = "Report"
)

// option is one configuration option: its flag, variable, file key, help,
// default and parser. The table below is the single source of the flags,
// the loader, the validation hints, the README table and the example file
// test.
type option struct {
	name     string // flag name
	section  string // YAML section, "" for top level; also the env infix
	category string
	usage    string // help; a `word` in backquotes is the value's placeholder
	def      string // default as shown in help and docs, "" for none
	noFile   bool   // not a key of the config file (--config itself)
	secret   bool   // the value is never echoed
	url      bool   // the value is a URL, echoed through redact.URL
	set      func(c *Config, v string) error
}

// env is the option's environment variable.
func (o *option) env() string {
	s := o.name
	if o.section != "" {
		s = o.section + "_" + s
	}
	return envPrefix + strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
}

// key is the option's key in the config file, within its section.
func (o *option) key() string { return strings.ReplaceAll(o.name, "-", "_") }

// fileKey names the key in the file for people: "rate:" or "rate: under mock_api:".
func (o *option) fileKey() string {
	if o.section != "" {
		return o.key() + ": under " + o.section + ":"
	}
	return o.key() + ":"
}

// path is the option's dotted key path, "rate" or "mock_api.rate".
func (o *option) path() string {
	if o.section != "" {
		return o.section + "." + o.key()
	}
	return o.key()
}

// hint says every way to set the option.
func (o *option) hint() string {
	if o.noFile {
		return fmt.Sprintf("set --%s or %s", o.name, o.env())
	}
	return fmt.Sprintf("set --%s, %s or %s in the config file", o.name, o.env(), o.fileKey())
}

// optionFlag is the command-line flag of an option. Values are taken as
// strings and parsed by Load, so that a flag, a variable and a file key go
// through one parser and fail with one message. The variable is named in the
// usage text but not in EnvVars: Load reads the environment itself, so that
// it can tell a flag from a variable.
type optionFlag struct {
	*cli.StringFlag
	opt *option
}

// Names returns the flag's name (options have no aliases). cli.StringFlag's
// runs a regexp on each call, and the cli asks every flag for its names on
// each lookup: that was most of Load's CPU, with a hundred flags.
func (f *optionFlag) Names() []string { return []string{f.Name} }

func (o *option) flag() cli.Flag {
	usage := o.usage
	if o.def != "" {
		usage += " (default: " + o.def + ")"
	}
	usage += " [$" + o.env() + "]"
	return &optionFlag{
		StringFlag: &cli.StringFlag{Name: o.name, Usage: usage, Category: o.category},
		opt:        o,
	}
}

func flags(opts ...*option) []cli.Flag {
	fs := make([]cli.Flag, len(opts))
	for i, o := range opts {
		fs[i] = o.flag()
	}
	return fs
}

// Flag groups. Each call returns new flags (urfave/cli keeps state in them),
// so build a command's list with slices.Concat of the groups it accepts.

// CommonFlags are the options of every command: --config, --log-format,
// --log-level.
func CommonFlags() []cli.Flag { return flags(optConfig, optLogFormat, optLogLevel) }

// SharedFlags are the options of the commands that use Redis: CommonFlags
// plus --redis and --out.
func SharedFlags() []cli.Flag {
	return flags(optConfig, optRedis, optRedisWait, optOut, optLogFormat, optLogLevel)
}

// CredentialFlags are --sid, --api-key and --api-key-file.
func CredentialFlags() []cli.Flag { return flags(optSID, optAPIKey, optAPIKeyFile) }

// APIFlags are the options of the API client, credentials included.
func APIFlags() []cli.Flag {
	return flags(optAPIURL, optSID, optAPIKey, optAPIKeyFile, optCallbackProfileID,
		optWireFormat, optBatchSize, optRate, optTimeout, optMaxAttempts)
}

// EnqueueFlags are the options of reading and enqueuing a list.
func EnqueueFlags() []cli.Flag {
	return flags(optInput, optColumn, optDefaultRegion, optJob, optChunkSize, optCallbackWait, optRecheckAfter)
}

// WorkerFlags are the options of a worker process.
func WorkerFlags() []cli.Flag {
	return flags(optConcurrency, optMetricsAddr, optShutdownTimeout, optRetention)
}

// MockAPIFlags are the simulator's own options; mock-api also takes
// CommonFlags, CredentialFlags and CallbackAuthFlags.
func MockAPIFlags() []cli.Flag {
	return flags(optListen, optMockRate, optLatency, optJitter, optFailRate,
		optResetRate, optRejectSuffix, optMaxBatch, optSeed,
		optCallbackURL, optCallbackDelay, optCallbackJitter, optCallbackDuplicateRate,
		optCallbackRefuseRate, optCapableFraction, optFlipFraction)
}

// ForgetFlags is --forget-after: how long the capability memory keeps an
// answer (worker, run, enqueue, memory).
func ForgetFlags() []cli.Flag { return flags(optForgetAfter) }

// ServiceFlags are --metrics-addr and --shutdown-timeout, for long-running
// commands other than the worker (callbacks).
func ServiceFlags() []cli.Flag { return flags(optMetricsAddr, optShutdownTimeout) }

// CallbackAuthFlags are --callback-token, --callback-token-file and
// --callback-header: what the receiver expects and the simulator sends.
func CallbackAuthFlags() []cli.Flag {
	return flags(optCallbackToken, optCallbackTokenFile, optCallbackHeader)
}

// CallbackFlags are the receiver's options: --callback-listen, the
// CallbackAuthFlags, the fields, the status values, --callback-allow and
// TLS.
func CallbackFlags() []cli.Flag {
	return flags(optCallbackListen, optCallbackToken, optCallbackTokenFile, optCallbackHeader,
		optCallbackNumberField, optCallbackStatusField, optCallbackCapable, optCallbackNotCapable,
		optCallbackAllow, optCallbackTLSCert, optCallbackTLSKey)
}

// ReportFlags are the report command's own options.
func ReportFlags() []cli.Flag { return flags(optReportFormat) }

// DefaultRegionFlag is --default-region alone, for commands that read
// numbers without enqueuing (callbacks).
func DefaultRegionFlag() []cli.Flag { return flags(optDefaultRegion) }

var (
	optConfig = &option{name: FlagConfig, category: categoryShared, noFile: true,
		usage: "read options from this YAML `FILE` (flags and variables take precedence)",
		set:   setString(func(c *Config) *string { return &c.ConfigFile })}
	optRedis = &option{name: FlagRedis, category: categoryShared, def: RedisDefault, url: true,
		usage: "Redis `URL`: redis://, rediss://, redis-socket://, redis-sentinel://HOST:PORT,...?master=NAME or redis-cluster://HOST:PORT,...",
		set:   setString(func(c *Config) *string { return &c.Redis })}
	optRedisWait = &option{name: FlagRedisWait, category: categoryShared, def: redisconn.StartupWaitDefault.String(),
		usage: "at start, wait this `DURATION` for a Redis that does not answer yet (0: fail at once)",
		set:   setDuration(func(c *Config) *time.Duration { return &c.RedisWait })}
	optOut = &option{name: FlagOut, category: categoryShared, def: outfiles.DirDefault,
		usage: "`DIR` for output files ({out}/{job}/)",
		set:   setString(func(c *Config) *string { return &c.Out })}
	optLogFormat = &option{name: FlagLogFormat, category: categoryShared, def: string(LogFormatDefault),
		usage: "log line `FORMAT` on stderr: text or json",
		set:   setLogFormat}
	optLogLevel = &option{name: FlagLogLevel, category: categoryShared, def: "info",
		usage: "lowest `LEVEL` logged: debug, info, warn or error",
		set:   setLogLevel}

	optAPIURL = &option{name: FlagAPIURL, category: categoryAPI, def: capapi.BaseURLDefault, url: true,
		usage: "base `URL` of the provider's region (e.g. https://api.in.kaleyra.io)",
		set: func(c *Config, v string) error {
			c.API.URL = strings.TrimRight(v, "/")
			return nil
		}}
	optSID = &option{name: FlagSID, category: categoryAPI,
		usage: "account `SID`",
		set:   setString(func(c *Config) *string { return &c.API.SID })}
	optAPIKey = &option{name: FlagAPIKey, category: categoryAPI, secret: true,
		usage: "API `KEY` (prefer --api-key-file or the variable: command lines are visible to other users)",
		set: func(c *Config, v string) error {
			c.API.Key = NewSecret(v)
			return nil
		}}
	optAPIKeyFile = &option{name: FlagAPIKeyFile, category: categoryAPI,
		usage: "read the API key from `FILE` (content trimmed)",
		set:   setString(func(c *Config) *string { return &c.API.KeyFile })}
	optCallbackProfileID = &option{name: FlagCallbackProfileID, category: categoryAPI,
		usage: "callback profile `ID` sent with each request",
		set:   setString(func(c *Config) *string { return &c.API.CallbackProfileID })}
	optWireFormat = &option{name: FlagWireFormat, category: categoryAPI, def: string(WireFormatDefault),
		usage: "how numbers are sent: `digits` (9198XXXXXXXX) or e164 (+9198XXXXXXXX)",
		set:   setWireFormat}
	optBatchSize = &option{name: FlagBatchSize, category: categoryAPI, def: strconv.Itoa(worker.BatchSizeDefault),
		usage: "`N` numbers per API request",
		set:   setInt(func(c *Config) *int { return &c.API.BatchSize })}
	optRate = &option{name: FlagRate, category: categoryAPI, def: formatFloat(RateDefault),
		usage: "`N` API requests per second for the whole fleet of workers (> 0)",
		set:   setFloat(func(c *Config) *float64 { return &c.API.Rate })}
	optTimeout = &option{name: FlagTimeout, category: categoryAPI, def: formatDuration(capapi.TimeoutDefault),
		usage: "`DURATION` bound of one API request",
		set:   setDuration(func(c *Config) *time.Duration { return &c.API.Timeout })}
	optMaxAttempts = &option{name: FlagMaxAttempts, category: categoryAPI, def: strconv.Itoa(worker.MaxAttemptsDefault),
		usage: "give up after `N` tries of a request on transient errors (its numbers end failed)",
		set:   setInt(func(c *Config) *int { return &c.API.MaxAttempts })}

	optInput = &option{name: FlagInput, category: categoryEnqueue,
		usage: "the list to read: a `PATH` (.gz is decompressed) or - for stdin",
		set:   setString(func(c *Config) *string { return &c.Enqueue.Input })}
	optColumn = &option{name: FlagColumn, category: categoryEnqueue,
		usage: "CSV column holding the numbers: header `NAME` or 1-based number",
		set:   setString(func(c *Config) *string { return &c.Enqueue.Column })}
	optDefaultRegion = &option{name: FlagDefaultRegion, category: categoryEnqueue, def: phonenorm.DefaultRegionDefault,
		usage: "region (`CC`, ISO 3166 alpha-2) for numbers without country code",
		set: func(c *Config, v string) error {
			c.Enqueue.DefaultRegion = strings.ToUpper(v)
			return nil
		}}
	optJob = &option{name: FlagJob, category: categoryEnqueue,
		usage: "job `ID` (1-128 of A-Z a-z 0-9 . _ -; generated when empty)",
		set:   setString(func(c *Config) *string { return &c.Enqueue.Job })}
	optChunkSize = &option{name: FlagChunkSize, category: categoryEnqueue, def: strconv.Itoa(enqueue.ChunkSizeDefault),
		usage: "`N` numbers per task (chunk), at most " + strconv.Itoa(enqueue.MaxChunkSize),
		set:   setInt(func(c *Config) *int { return &c.Enqueue.ChunkSize })}

	optCallbackWait = &option{name: FlagCallbackWait, category: categoryEnqueue, def: "0s",
		usage: "after its last API answer, wait up to `DURATION` for the callbacks of the accepted numbers (state awaiting_callbacks); 0 = no wait",
		set:   setDuration(func(c *Config) *time.Duration { return &c.Enqueue.CallbackWait })}

	optRecheckAfter = &option{name: FlagRecheckAfter, category: categoryEnqueue, def: "0s",
		usage: "do not send a number whose remembered answer is newer than `DURATION` (results.csv: cached); 0 = send every number",
		set:   setDuration(func(c *Config) *time.Duration { return &c.Enqueue.RecheckAfter })}

	optConcurrency = &option{name: FlagConcurrency, category: categoryWorker, def: strconv.Itoa(worker.ConcurrencyDefault),
		usage: "process `N` chunks at once in one worker, with up to N API calls in flight (a chunk has several while the worker has fewer), and up to 4·N while none of them waits for the rate limit (a worker alone, or ending a job alone)",
		set:   setInt(func(c *Config) *int { return &c.Worker.Concurrency })}
	optMetricsAddr = &option{name: FlagMetricsAddr, category: categoryWorker,
		usage: "serve Prometheus /metrics on `ADDR` (e.g. :9090; off when empty)",
		set:   setString(func(c *Config) *string { return &c.Worker.MetricsAddr })}
	optShutdownTimeout = &option{name: FlagShutdownTimeout, category: categoryWorker, def: formatDuration(worker.ShutdownTimeoutDefault),
		usage: "on SIGTERM, drain in-flight work for at most this `DURATION`",
		set:   setDuration(func(c *Config) *time.Duration { return &c.Worker.ShutdownTimeout })}
	optRetention = &option{name: FlagRetention, category: categoryWorker, def: formatDuration(RetentionDefault),
		usage: "keep a finished job's records in Redis for this `DURATION` (status, retry, export); 0 keeps them",
		set:   setDuration(func(c *Config) *time.Duration { return &c.Worker.Retention })}

	optForgetAfter = &option{name: FlagForgetAfter, category: categoryMemory, def: "2160h",
		usage: "remember a number's answer (capability or API rejection) for this `DURATION`; older ones are ignored and swept daily (0 = forever)",
		set:   setDuration(func(c *Config) *time.Duration { return &c.Memory.ForgetAfter })}

	optCallbackListen = &option{name: FlagCallbackListen, category: categoryCallback,
		usage: "receive the provider's callbacks on `ADDR` (e.g. :8443; run: off when empty)",
		set:   setString(func(c *Config) *string { return &c.Callback.Listen })}
	optCallbackToken = &option{name: FlagCallbackToken, category: categoryCallback, secret: true,
		usage: "shared `TOKEN` the callback profile sends (user:password for a profile with basic auth; required unless --callback-listen is loopback; prefer --callback-token-file)",
		set: func(c *Config, v string) error {
			c.Callback.Token = NewSecret(v)
			return nil
		}}
	optCallbackTokenFile = &option{name: FlagCallbackTokenFile, category: categoryCallback,
		usage: "read the callback token from `FILE` (content trimmed)",
		set:   setString(func(c *Config) *string { return &c.Callback.TokenFile })}
	optCallbackHeader = &option{name: FlagCallbackHeader, category: categoryCallback, def: callbacks.HeaderDefault,
		usage: "request header `NAME` carrying the callback token (its value: the token, Bearer <token>, or Basic and the base64 of user:password)",
		set:   setString(func(c *Config) *string { return &c.Callback.Header })}
	optCallbackNumberField = &option{name: FlagCallbackNumberField, category: categoryCallback, def: callbacks.NumberFieldDefault,
		usage: "`PATH` of the number in a callback: a field name or a dot path into JSON (data.mobile)",
		set:   setString(func(c *Config) *string { return &c.Callback.NumberField })}
	optCallbackStatusField = &option{name: FlagCallbackStatusField, category: categoryCallback, def: callbacks.StatusFieldDefault,
		usage: "`PATH` of the capability status in a callback: a field name or a dot path",
		set:   setString(func(c *Config) *string { return &c.Callback.StatusField })}
	optCallbackCapable = &option{name: FlagCallbackCapable, category: categoryCallback, def: strings.Join(callbacks.CapableDefault, ","),
		usage: "status `VALUES` (comma-separated, any case) that mean capable",
		set:   setList(func(c *Config) *[]string { return &c.Callback.Capable })}
	optCallbackNotCapable = &option{name: FlagCallbackNotCapable, category: categoryCallback, def: strings.Join(callbacks.NotCapableDefault, ","),
		usage: "status `VALUES` (comma-separated, any case) that mean not capable; any other value is unknown",
		set:   setList(func(c *Config) *[]string { return &c.Callback.NotCapable })}
	optCallbackAllow = &option{name: FlagCallbackAllow, category: categoryCallback,
		usage: "accept callbacks only from these `CIDRS` (comma-separated, e.g. 203.0.113.0/24; empty: any source)",
		set:   setCIDRs}
	optCallbackTLSCert = &option{name: FlagCallbackTLSCert, category: categoryCallback,
		usage: "serve callbacks over HTTPS with this certificate `FILE` (PEM; with --callback-tls-key)",
		set:   setString(func(c *Config) *string { return &c.Callback.TLSCert })}
	optCallbackTLSKey = &option{name: FlagCallbackTLSKey, category: categoryCallback,
		usage: "private key `FILE` (PEM) of --callback-tls-cert",
		set:   setString(func(c *Config) *string { return &c.Callback.TLSKey })}

	optListen = &option{name: FlagListen, section: mockSection, category: categoryMockAPI, def: mockapi.ListenDefault,
		usage: "`ADDR` to listen on",
		set:   setString(func(c *Config) *string { return &c.MockAPI.Listen })}
	optMockRate = &option{name: FlagMockRate, section: mockSection, category: categoryMockAPI, def: "0",
		usage: "the simulator's own limit: answer 429 beyond `N` requests per sliding second (0 = none)",
		set:   setFloat(func(c *Config) *float64 { return &c.MockAPI.Rate })}
	optLatency = &option{name: FlagLatency, section: mockSection, category: categoryMockAPI, def: "0s",
		usage: "`DURATION` added to every answer",
		set:   setDuration(func(c *Config) *time.Duration { return &c.MockAPI.Latency })}
	optJitter = &option{name: FlagJitter, section: mockSection, category: categoryMockAPI, def: "0s",
		usage: "random extra delay up to this `DURATION`",
		set:   setDuration(func(c *Config) *time.Duration { return &c.MockAPI.Jitter })}
	optFailRate = &option{name: FlagFailRate, section: mockSection, category: categoryMockAPI, def: "0",
		usage: "`FRACTION` (0..1) of requests answered 503",
		set:   setFloat(func(c *Config) *float64 { return &c.MockAPI.FailRate })}
	optResetRate = &option{name: FlagResetRate, section: mockSection, category: categoryMockAPI, def: "0",
		usage: "`FRACTION` (0..1) of requests whose connection is dropped",
		set:   setFloat(func(c *Config) *float64 { return &c.MockAPI.ResetRate })}
	optRejectSuffix = &option{name: FlagRejectSuffix, section: mockSection, category: categoryMockAPI,
		usage: "numbers whose digits end with these `DIGITS` are invalid (the request gets 400)",
		set:   setString(func(c *Config) *string { return &c.MockAPI.RejectSuffix })}
	optMaxBatch = &option{name: FlagMaxBatch, section: mockSection, category: categoryMockAPI, def: strconv.Itoa(mockapi.MaxBatchDefault),
		usage: "refuse (400) requests with more than `N` numbers",
		set:   setInt(func(c *Config) *int { return &c.MockAPI.MaxBatch })}
	optSeed = &option{name: FlagSeed, section: mockSection, category: categoryMockAPI, def: "0",
		usage: "`SEED` of faults and jitter, for reproducible runs (0 = random)",
		set:   setInt64(func(c *Config) *int64 { return &c.MockAPI.Seed })}
	optCallbackURL = &option{name: FlagCallbackURL, section: mockSection, category: categoryMockAPI, url: true,
		usage: "send each accepted number's capability to this callback `URL` (off when empty)",
		set:   setString(func(c *Config) *string { return &c.MockAPI.CallbackURL })}
	optCallbackDelay = &option{name: FlagCallbackDelay, section: mockSection, category: categoryMockAPI, def: "0s",
		usage: "send a callback this `DURATION` after the request was accepted",
		set:   setDuration(func(c *Config) *time.Duration { return &c.MockAPI.CallbackDelay })}
	optCallbackJitter = &option{name: FlagCallbackJitter, section: mockSection, category: categoryMockAPI, def: "0s",
		usage: "random extra delay of a callback up to this `DURATION` (callbacks come in random order)",
		set:   setDuration(func(c *Config) *time.Duration { return &c.MockAPI.CallbackJitter })}
	optCallbackDuplicateRate = &option{name: FlagCallbackDuplicateRate, section: mockSection, category: categoryMockAPI, def: "0",
		usage: "`FRACTION` (0..1) of callbacks sent twice",
		set:   setFloat(func(c *Config) *float64 { return &c.MockAPI.CallbackDuplicateRate })}
	optCallbackRefuseRate = &option{name: FlagCallbackRefuseRate, section: mockSection, category: categoryMockAPI, def: "0",
		usage: "`FRACTION` (0..1) of callbacks first sent with a wrong token (refused, then retried)",
		set:   setFloat(func(c *Config) *float64 { return &c.MockAPI.CallbackRefuseRate })}
	optCapableFraction = &option{name: FlagCapableFraction, section: mockSection, category: categoryMockAPI, def: formatFloat(MockCapableFractionDefault),
		usage: "`FRACTION` (0..1) of numbers the simulator calls capable (a fixed function of the number)",
		set:   setFloat(func(c *Config) *float64 { return &c.MockAPI.CapableFraction })}
	optFlipFraction = &option{name: FlagFlipFraction, section: mockSection, category: categoryMockAPI, def: "0",
		usage: "`FRACTION` (0..1) of numbers whose answer is the other way round (a fixed function of the number, mockapi.Flipped): a provider whose answers changed since an earlier run",
		set:   setFloat(func(c *Config) *float64 { return &c.MockAPI.FlipFraction })}

	optReportFormat = &option{name: FlagReportFormat, section: reportSection, category: categoryReport, def: string(ReportFormatDefault),
		usage: "what capcheck report writes: `html` ({out}/{job}/report.html) or png (report.png, the request-rate plot, for a chat message)",
		set: func(c *Config, v string) error {
			switch f := ReportFormat(strings.ToLower(v)); f {
			case ReportHTML, ReportPNG:
				c.Report.Format = f
				return nil
			}
			return errors.New("must be html or png")
		}}
)

// options lists every option, in the order of help, docs and messages.
var options = []*option{
	optConfig, optRedis, optRedisWait, optOut, optLogFormat, optLogLevel,
	optAPIURL, optSID, optAPIKey, optAPIKeyFile, optCallbackProfileID,
	optWireFormat, optBatchSize, optRate, optTimeout, optMaxAttempts,
	optInput, optColumn, optDefaultRegion, optJob, optChunkSize, optCallbackWait, optRecheckAfter,
	optConcurrency, optMetricsAddr, optShutdownTimeout, optRetention,
	optForgetAfter,
	optCallbackListen, optCallbackToken, optCallbackTokenFile, optCallbackHeader,
	optCallbackNumberField, optCallbackStatusField, optCallbackCapable, optCallbackNotCapable,
	optCallbackAllow, optCallbackTLSCert, optCallbackTLSKey,
	optListen, optMockRate, optLatency, optJitter, optFailRate,
	optResetRate, optRejectSuffix, optMaxBatch, optSeed,
	optCallbackURL, optCallbackDelay, optCallbackJitter, optCallbackDuplicateRate,
	optCallbackRefuseRate, optCapableFraction, optFlipFraction,
	optReportFormat,
}

// Parsers. Their errors say what the value must be; Load adds the option,
// the value and the hint.

func setString(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		*field(c) = v
		return nil
	}
}

func setInt(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("must be a whole number")
		}
		*field(c) = n
		return nil
	}
}

func setInt64(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errors.New("must be a whole number")
		}
		*field(c) = n
		return nil
	}
}

func setFloat(field func(*Config) *float64) func(*Config, string) error {
	return func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return errors.New("must be a number")
		}
		*field(c) = f
		return nil
	}
}

func setDuration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("must be a duration such as 500ms, 10s or 1m30s")
		}
		*field(c) = d
		return nil
	}
}

func setLogFormat(c *Config, v string) error {
	switch f := LogFormat(strings.ToLower(v)); f {
	case LogFormatText, LogFormatJSON:
		c.LogFormat = f
		return nil
	}
	return errors.New("must be text or json")
}

func setLogLevel(c *Config, v string) error {
	switch strings.ToLower(v) {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		return errors.New("must be debug, info, warn or error")
	}
	return nil
}

func setWireFormat(c *Config, v string) error {
	switch f := WireFormat(strings.ToLower(v)); f {
	case WireFormatDigits, WireFormatE164:
		c.API.WireFormat = f
		return nil
	}
	return errors.New("must be digits or e164")
}

// setList reads a comma-separated list; empty items are dropped.
func setList(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		var out []string
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		*field(c) = out
		return nil
	}
}

func setCIDRs(c *Config, v string) error {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return fmt.Errorf("must be comma-separated networks such as 203.0.113.0/24 or addresses (%q is neither)", s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked().String())
	}
	c.Callback.Allow = out
	return nil
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// formatDuration writes d as an operator would: 168h, 1m, 30s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// HidesValue reports whether the value of the flag name is never shown (a
// secret such as --api-key) or shown redacted (a URL such as --redis). An
// argument that follows such a flag on a command line may be its value, so
// the command layer does not echo it either.
func HidesValue(name string) bool {
	for _, o := range options {
		if o.name == name && (o.secret || o.url) {
			return true
		}
	}
	return false
}
