package configs

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"

	"github.com/capcheck/capcheck/callbacks"
	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/mockapi"
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
	v.general()
	v.api(n)
	v.enqueue(n)
	v.worker()
	v.mockAPI()
	v.callback(n)
	return errors.Join(v.errs...)
}

// general checks the options every command shares.
func (v *validator) general() {
	c := v.c
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
}

// api checks the options of the API client; capapi owns the URL, SID and
// key rules.
func (v *validator) api(n Needs) {
	a := v.c.API
	if err := capapi.CheckBaseURL(a.URL); err != nil {
		v.bad(optAPIURL, a.URL, err.Error())
	}
	switch {
	case a.SID == "" && n.Credentials:
		v.missing(optSID, "is required (the account SID)")
	case a.SID == "":
	default:
		if err := capapi.CheckSID(a.SID); err != nil {
			v.bad(optSID, a.SID, err.Error())
		}
	}
	switch {
	case a.Key.IsZero() && n.Credentials:
		v.errs = append(v.errs, &Error{Option: FlagAPIKey, Msg: "an API key is required; set --api-key-file, " +
			optAPIKeyFile.env() + " or api_key_file: in the config file to a file holding it (or --api-key, " +
			optAPIKey.env() + " or api_key:)"})
	case a.Key.IsZero():
	default:
		if err := capapi.CheckAPIKey(a.Key.Reveal()); err != nil {
			v.bad(optAPIKey, "", err.Error()+" (value not shown)")
		}
	}
	if a.WireFormat != WireFormatDigits && a.WireFormat != WireFormatE164 {
		v.bad(optWireFormat, string(a.WireFormat), "must be digits or e164")
	}
	v.atLeast(optBatchSize, a.BatchSize, 1)
	if !(a.Rate > 0) || math.IsInf(a.Rate, 0) {
		v.bad(optRate, formatFloat(a.Rate), "must be > 0")
	}
	if a.Timeout <= 0 {
		v.bad(optTimeout, a.Timeout.String(), "must be > 0")
	}
	v.atLeast(optMaxAttempts, a.MaxAttempts, 1)
}

// enqueue checks the options of enqueue: the list, its numbers and the job.
func (v *validator) enqueue(n Needs) {
	e := v.c.Enqueue
	if e.Input == "" && n.Input {
		v.missing(optInput, "is required: a file path, or - for standard input")
	}
	if i, err := strconv.Atoi(e.Column); err == nil && i < 1 {
		v.bad(optColumn, e.Column, "must be a header name or a column number from 1")
	}
	if !phonenumbers.GetSupportedRegions()[e.DefaultRegion] {
		v.bad(optDefaultRegion, e.DefaultRegion,
			"must be a region code libphonenumber knows, such as IN, US, GB or DE")
	}
	if e.Job != "" && !jobstore.ValidJobID(e.Job) {
		v.bad(optJob, e.Job, "must be "+jobstore.JobIDRule)
	}
	if n := e.ChunkSize; n < 1 || n > enqueue.MaxChunkSize {
		v.bad(optChunkSize, strconv.Itoa(n), fmt.Sprintf("must be 1 to %d", enqueue.MaxChunkSize))
	}
	if e.CallbackWait < 0 {
		v.bad(optCallbackWait, e.CallbackWait.String(), "must be >= 0 (0: the job waits for no callbacks)")
	}
	if e.RecheckAfter < 0 {
		v.bad(optRecheckAfter, e.RecheckAfter.String(), "must be >= 0 (0: every number is sent)")
	}
}

// worker checks the options of workers, the capability memory's included.
func (v *validator) worker() {
	w := v.c.Worker
	v.atLeast(optConcurrency, w.Concurrency, 1)
	if w.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(w.MetricsAddr); err != nil {
			v.bad(optMetricsAddr, w.MetricsAddr, "must be HOST:PORT or :PORT, such as :9090")
		}
	}
	if w.ShutdownTimeout <= 0 {
		v.bad(optShutdownTimeout, w.ShutdownTimeout.String(), "must be > 0")
	}
	if w.Retention < 0 {
		v.bad(optRetention, w.Retention.String(), "must be >= 0 (0 keeps finished jobs)")
	}
	if f := v.c.Memory.ForgetAfter; f < 0 {
		v.bad(optForgetAfter, f.String(), "must be >= 0 (0 remembers forever)")
	}
}

// mockAPI checks the simulator's options; mockapi owns its rules.
func (v *validator) mockAPI() {
	m := v.c.MockAPI
	if _, _, err := net.SplitHostPort(m.Listen); err != nil {
		v.bad(optListen, m.Listen, "must be HOST:PORT or :PORT, such as 127.0.0.1:8080")
	}
	v.check(optMockRate, formatFloat(m.Rate), mockapi.CheckRate(m.Rate))
	if m.Latency < 0 {
		v.bad(optLatency, m.Latency.String(), "must not be negative")
	}
	if m.Jitter < 0 {
		v.bad(optJitter, m.Jitter.String(), "must not be negative")
	}
	v.check(optFailRate, formatFloat(m.FailRate), mockapi.CheckFraction(m.FailRate))
	v.check(optResetRate, formatFloat(m.ResetRate), mockapi.CheckFraction(m.ResetRate))
	if mockapi.CheckFaultRates(m.FailRate, m.ResetRate) != nil {
		v.errs = append(v.errs, newError(optFailRate, "plus --reset-rate must not exceed 1",
			formatFloat(m.FailRate)+" + "+formatFloat(m.ResetRate), v.c.origins[optFailRate]))
	}
	v.check(optRejectSuffix, m.RejectSuffix, mockapi.CheckRejectSuffix(m.RejectSuffix))
	v.atLeast(optMaxBatch, m.MaxBatch, 1)
	v.check(optCallbackURL, m.CallbackURL, mockapi.CheckCallbackURL(m.CallbackURL))
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
		v.check(f.o, formatFloat(f.v), mockapi.CheckFraction(f.v))
	}
}

// callback checks the options of the callback receiver; callbacks owns the
// rules of its header, fields and status values.
func (v *validator) callback(n Needs) {
	cb := v.c.Callback
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
	v.check(optCallbackHeader, cb.Header, callbacks.CheckHeader(cb.Header))
	v.check(optCallbackNumberField, cb.NumberField, callbacks.CheckField(cb.NumberField))
	v.check(optCallbackStatusField, cb.StatusField, callbacks.CheckField(cb.StatusField))
	if s, ok := callbacks.Overlap(cb.Capable, cb.NotCapable); ok {
		v.bad(optCallbackNotCapable, strings.Join(cb.NotCapable, ","),
			fmt.Sprintf("must not repeat a value of --%s (%q)", FlagCallbackCapable, s))
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

// check reports err, a problem of value, if not nil.
func (v *validator) check(o *option, value string, err error) {
	if err != nil {
		v.bad(o, value, err.Error())
	}
}

func (v *validator) missing(o *option, problem string) {
	v.errs = append(v.errs, &Error{Option: o.name, Msg: "--" + o.name + " " + problem + "; " + o.hint()})
}

func (v *validator) atLeast(o *option, n, least int) {
	if n < least {
		v.bad(o, strconv.Itoa(n), fmt.Sprintf("must be at least %d", least))
	}
}

// CheckJobID reports whether id is a valid job ID (jobstore.JobIDRule), for
// commands that take a job ID as an argument. The error matches ErrUsage.
func CheckJobID(id string) error {
	if !jobstore.ValidJobID(id) {
		return &Error{Msg: fmt.Sprintf("job ID %q must be %s", id, jobstore.JobIDRule)}
	}
	return nil
}
