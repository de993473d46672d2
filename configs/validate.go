package configs

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/jobstore"
)

// Needs says which options a command requires. Values are checked whether
// required or not; Needs only adds "is required" checks.
type Needs struct {
	// Credentials requires --sid and an API key (--api-key or
	// --api-key-file): the commands that call the API or simulate it.
	Credentials bool
	// Input requires --input: enqueue and run.
	Input bool
	// CallbackListen requires --callback-listen: capcheck callbacks.
	CallbackListen bool
}

// Validate checks every value and the options n requires. It reports all
// problems at once (errors.Join of [*Error]s, each matching ErrUsage), each
// naming the option, the bad value and every way to set it. It expects the
// defaults to be filled in (Load and WithDefaults do that).
func (c Config) Validate(n Needs) error {
	v := &validator{c: &c}

	if p := redisProblem(c.Redis); p != "" {
		v.bad(optRedis, c.Redis, p)
	}
	if c.RedisWait < 0 {
		v.bad(optRedisWait, c.RedisWait.String(), "must be >= 0 (0 fails at once when Redis does not answer)")
	}
	if c.Out == "" {
		v.bad(optOut, c.Out, "must not be empty")
	}
	if c.LogFormat != LogFormatText && c.LogFormat != LogFormatJSON {
		v.bad(optLogFormat, string(c.LogFormat), "must be text or json")
	}

	if err := capapi.CheckBaseURL(c.API.URL); err != nil {
		v.bad(optAPIURL, c.API.URL, err.Error())
	}
	switch {
	case c.API.SID == "" && n.Credentials:
		v.missing(optSID, "is required (the account SID)")
	case c.API.SID == "":
	default:
		if err := capapi.CheckSID(c.API.SID); err != nil {
			v.bad(optSID, c.API.SID, err.Error())
		}
	}
	switch {
	case c.API.Key.IsZero() && n.Credentials:
		v.errs = append(v.errs, &Error{Option: FlagAPIKey, Msg: "an API key is required; set --api-key-file, " +
			optAPIKeyFile.env() + " or api_key_file: in the config file to a file holding it (or --api-key, " +
			optAPIKey.env() + " or api_key:)"})
	case c.API.Key.IsZero():
	default:
		if err := capapi.CheckAPIKey(c.API.Key.Reveal()); err != nil {
			v.bad(optAPIKey, "", err.Error()+" (value not shown)")
		}
	}
	if c.API.WireFormat != WireFormatDigits && c.API.WireFormat != WireFormatE164 {
		v.bad(optWireFormat, string(c.API.WireFormat), "must be digits or e164")
	}
	v.atLeast(optBatchSize, c.API.BatchSize, 1)
	if !(c.API.Rate > 0) || math.IsInf(c.API.Rate, 0) {
		v.bad(optRate, formatFloat(c.API.Rate), "must be > 0")
	}
	if c.API.Timeout <= 0 {
		v.bad(optTimeout, c.API.Timeout.String(), "must be > 0")
	}
	v.atLeast(optMaxAttempts, c.API.MaxAttempts, 1)

	if c.Enqueue.Input == "" && n.Input {
		v.missing(optInput, "is required: a file path, or - for standard input")
	}
	if i, err := strconv.Atoi(c.Enqueue.Column); err == nil && i < 1 {
		v.bad(optColumn, c.Enqueue.Column, "must be a header name or a column number from 1")
	}
	if !phonenumbers.GetSupportedRegions()[c.Enqueue.DefaultRegion] {
		v.bad(optDefaultRegion, c.Enqueue.DefaultRegion,
			"must be a region code libphonenumber knows, such as IN, US, GB or DE")
	}
	if c.Enqueue.Job != "" && !jobstore.ValidJobID(c.Enqueue.Job) {
		v.bad(optJob, c.Enqueue.Job, "must be "+jobstore.JobIDRule)
	}
	if n := c.Enqueue.ChunkSize; n < 1 || n > enqueue.MaxChunkSize {
		v.bad(optChunkSize, strconv.Itoa(n), fmt.Sprintf("must be 1 to %d", enqueue.MaxChunkSize))
	}
	if c.Enqueue.CallbackWait < 0 {
		v.bad(optCallbackWait, c.Enqueue.CallbackWait.String(), "must be >= 0 (0: the job waits for no callbacks)")
	}

	v.atLeast(optConcurrency, c.Worker.Concurrency, 1)
	if c.Worker.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.Worker.MetricsAddr); err != nil {
			v.bad(optMetricsAddr, c.Worker.MetricsAddr, "must be HOST:PORT or :PORT, such as :9090")
		}
	}
	if c.Worker.ShutdownTimeout <= 0 {
		v.bad(optShutdownTimeout, c.Worker.ShutdownTimeout.String(), "must be > 0")
	}
	if c.Worker.Retention < 0 {
		v.bad(optRetention, c.Worker.Retention.String(), "must be >= 0 (0 keeps finished jobs)")
	}
	if c.Memory.ForgetAfter < 0 {
		v.bad(optForgetAfter, c.Memory.ForgetAfter.String(), "must be >= 0 (0 remembers forever)")
	}

	m := c.MockAPI
	if _, _, err := net.SplitHostPort(m.Listen); err != nil {
		v.bad(optListen, m.Listen, "must be HOST:PORT or :PORT, such as 127.0.0.1:8080")
	}
	if m.Rate != 0 && !(m.Rate >= 1) || math.IsInf(m.Rate, 0) {
		v.bad(optMockRate, formatFloat(m.Rate), "must be 0 (no limit) or at least 1")
	}
	if m.Latency < 0 {
		v.bad(optLatency, m.Latency.String(), "must not be negative")
	}
	if m.Jitter < 0 {
		v.bad(optJitter, m.Jitter.String(), "must not be negative")
	}
	failOK, resetOK := isFraction(m.FailRate), isFraction(m.ResetRate)
	if !failOK {
		v.bad(optFailRate, formatFloat(m.FailRate), "must be between 0 and 1")
	}
	if !resetOK {
		v.bad(optResetRate, formatFloat(m.ResetRate), "must be between 0 and 1")
	}
	if failOK && resetOK && m.FailRate+m.ResetRate > 1 {
		v.errs = append(v.errs, newError(optFailRate, "plus --reset-rate must not exceed 1",
			formatFloat(m.FailRate)+" + "+formatFloat(m.ResetRate), c.origins[optFailRate]))
	}
	if strings.Trim(m.RejectSuffix, "0123456789") != "" {
		v.bad(optRejectSuffix, m.RejectSuffix, "must be digits only")
	}
	v.atLeast(optMaxBatch, m.MaxBatch, 1)
	v.mockCallbacks(m)
	v.callback(c.Callback, n)

	return errors.Join(v.errs...)
}

func (v *validator) mockCallbacks(m MockAPI) {
	if m.CallbackURL != "" {
		if u, err := url.Parse(m.CallbackURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.bad(optCallbackURL, m.CallbackURL, "must be an http:// or https:// URL such as http://127.0.0.1:8081/callback")
		}
	}
	if m.CallbackDelay < 0 {
		v.bad(optCallbackDelay, m.CallbackDelay.String(), "must not be negative")
	}
	if m.CallbackJitter < 0 {
		v.bad(optCallbackJitter, m.CallbackJitter.String(), "must not be negative")
	}
	for _, f := range []struct {
		o *option
		v float64
	}{{optCallbackDuplicateRate, m.CallbackDuplicateRate}, {optCallbackRefuseRate, m.CallbackRefuseRate},
		{optCapableFraction, m.CapableFraction}, {optFlipFraction, m.FlipFraction}} {
		if !isFraction(f.v) {
			v.bad(f.o, formatFloat(f.v), "must be between 0 and 1")
		}
	}
}

func (v *validator) callback(cb Callback, n Needs) {
	switch {
	case cb.Listen == "" && n.CallbackListen:
		v.missing(optCallbackListen, "is required: the address the provider's callbacks come to, such as :8443")
	case cb.Listen != "":
		if _, _, err := net.SplitHostPort(cb.Listen); err != nil {
			v.bad(optCallbackListen, cb.Listen, "must be HOST:PORT or :PORT, such as :8443")
		} else if cb.Token.IsZero() && !IsLoopback(cb.Listen) {
			v.errs = append(v.errs, &Error{Option: FlagCallbackToken, Msg: "a callback token is required when --callback-listen (" +
				cb.Listen + ") is not a loopback address; set --callback-token-file, " + optCallbackTokenFile.env() +
				" or callback_token_file: in the config file to a file holding it (or --callback-token, " +
				optCallbackToken.env() + " or callback_token:)"})
		}
	}
	if strings.ContainsFunc(cb.Token.Reveal(), func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		v.bad(optCallbackToken, "", "must not contain spaces or control characters (value not shown)")
	}
	if cb.Header == "" || strings.ContainsFunc(cb.Header, func(r rune) bool { return r <= ' ' || r == ':' || r > '~' }) {
		v.bad(optCallbackHeader, cb.Header, "must be an HTTP header name such as Authorization or X-Api-Key")
	}
	for _, f := range []struct {
		o *option
		p string
	}{{optCallbackNumberField, cb.NumberField}, {optCallbackStatusField, cb.StatusField}} {
		if f.p == "" || strings.HasPrefix(f.p, ".") || strings.HasSuffix(f.p, ".") || strings.Contains(f.p, "..") {
			v.bad(f.o, f.p, "must be a field name or a dot path such as data.mobile")
		}
	}
	capable := map[string]bool{}
	for _, s := range cb.Capable {
		capable[strings.ToLower(s)] = true
	}
	for _, s := range cb.NotCapable {
		if capable[strings.ToLower(s)] {
			v.bad(optCallbackNotCapable, strings.Join(cb.NotCapable, ","),
				fmt.Sprintf("must not repeat a value of --%s (%q)", FlagCallbackCapable, s))
			break
		}
	}
	if (cb.TLSCert == "") != (cb.TLSKey == "") {
		v.missing(optCallbackTLSKey, "and --"+FlagCallbackTLSCert+" go together: set both files, or neither (TLS terminated in front)")
	}
}

// IsLoopback reports whether the listen address addr (HOST:PORT) is on a
// loopback interface only: localhost, 127.0.0.0/8 or ::1. ":PORT" listens
// on every interface, so it is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	return isLoopbackHost(host)
}

type validator struct {
	c    *Config
	errs []error
}

func (v *validator) bad(o *option, value, problem string) {
	if value != "" {
		value = show(o, value)
	}
	v.errs = append(v.errs, newError(o, problem, value, v.c.origins[o]))
}

func (v *validator) missing(o *option, problem string) {
	v.errs = append(v.errs, &Error{Option: o.name, Msg: "--" + o.name + " " + problem + "; " + o.hint()})
}

func (v *validator) atLeast(o *option, n, least int) {
	if n < least {
		v.bad(o, strconv.Itoa(n), fmt.Sprintf("must be at least %d", least))
	}
}

func isFraction(f float64) bool { return f >= 0 && f <= 1 } // false for NaN

// CheckJobID reports whether id is a valid job ID (jobstore.JobIDRule), for
// commands that take a job ID as an argument. The error matches ErrUsage.
func CheckJobID(id string) error {
	if !jobstore.ValidJobID(id) {
		return &Error{Msg: fmt.Sprintf("job ID %q must be %s", id, jobstore.JobIDRule)}
	}
	return nil
}
