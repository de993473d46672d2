// Package mockapi is a strict local simulator of the provider's SMS-over-IP
// capability-check API, for demos (capcheck mock-api), end-to-end tests and
// benchmarks. It checks what the provider checks (path, SID, api-key,
// Content-Type, body shape, batch size, number form), enforces a strict
// sliding-window rate limit, injects latency, 5xx answers and dropped
// connections, and counts what it saw (see [Stats]).
package mockapi

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"time"
)

// Defaults of [Config].
const (
	// MaxBatchDefault is the default largest number of numbers per request.
	MaxBatchDefault = 100
	// ListenDefault is the address capcheck mock-api listens on by default:
	// loopback only.
	ListenDefault = "127.0.0.1:8080"
	// CallbackHeaderDefault is the header callbacks carry their token in by
	// default, as the provider's callback profiles do.
	CallbackHeaderDefault = "Authorization"
)

// Config configures a [Server].
type Config struct {
	// SID is the account SID expected in the path
	// /v1/{SID}/messages/soip/capability-check. Required; no default.
	SID string

	// APIKey is the value the api-key header must have. It is never logged.
	// Required; no default.
	APIKey string

	// MaxBatch is the largest number of numbers one request may carry; more
	// are refused with 400 RBC529. Defaults to MaxBatchDefault (100).
	MaxBatch int

	// Rate is how many requests the "provider" allows in any sliding
	// 1-second window; a request beyond it gets 429 with a Retry-After. A
	// fractional rate allows its integer part per window. Defaults to 0
	// (unlimited). Under Serve on Linux a request counts when the kernel
	// received it, not when its handler runs; that time is the kernel's
	// wall clock, so a step of the clock (NTP) shifts the windows.
	Rate float64

	// Latency is added to every answer on the API path, from the request's
	// arrival. Defaults to 0.
	Latency time.Duration

	// Jitter adds a uniform random delay in [0, Jitter] on top of Latency.
	// Defaults to 0.
	Jitter time.Duration

	// FailRate is the fraction (0..1) of requests, among those past the rate
	// limit, answered 503 with a JSON body. Defaults to 0.
	FailRate float64

	// ResetRate is the fraction (0..1) of requests, among those past the rate
	// limit, whose connection is dropped without an answer. FailRate plus
	// ResetRate must not exceed 1. Defaults to 0.
	ResetRate float64

	// RejectSuffix makes a number whose digits end with it invalid: the whole
	// request is refused 400 RBC529, as the real provider refuses a batch
	// with any invalid number in it. Digits only. Defaults to "" (none).
	RejectSuffix string

	// Seed seeds the random source of faults and jitter, for reproducible
	// runs. Defaults to 0 (a random seed).
	Seed int64

	// TrackNumbers keeps Stats.Numbers, the acceptance count of every
	// number; copying it is costly with millions of numbers. Defaults to
	// false.
	TrackNumbers bool

	// CallbackURL, when set, receives one callback per accepted number:
	// POST, JSON {"number": as sent, "status": "capable" or "not_capable"
	// as [CapableAfterFlips] says}, with
	// CallbackToken in CallbackHeader ("Bearer <token>"); a non-2xx answer is
	// retried with backoff. Defaults to "" (no callbacks).
	CallbackURL string

	// CallbackToken is the token callbacks carry. Never logged. Defaults
	// to "" (no header).
	CallbackToken string

	// CallbackHeader is the header carrying the token. Defaults to
	// CallbackHeaderDefault.
	CallbackHeader string

	// CallbackDelay and CallbackJitter: a callback is sent CallbackDelay
	// plus a random [0, CallbackJitter] after its request was accepted.
	// Default to 0.
	CallbackDelay, CallbackJitter time.Duration

	// CallbackDuplicateRate is the fraction (0..1) of callbacks sent twice.
	// Defaults to 0.
	CallbackDuplicateRate float64

	// CallbackRefuseRate is the fraction (0..1) of callbacks first sent with
	// a wrong token (the receiver refuses them; they are retried). Defaults
	// to 0.
	CallbackRefuseRate float64

	// CapableFraction is the share of numbers reported capable (see
	// [Capable]). Defaults to 0.
	CapableFraction float64

	// FlipFraction is the share of numbers whose answer is the other way
	// round from CapableFraction's (see [Flipped]): a provider whose answers
	// changed since an earlier run. Defaults to 0.
	FlipFraction float64

	// Logger gets one debug line per request and the listen address at
	// info level. Defaults to nil (no logging).
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with zero optional fields set to their
// defaults.
func (c Config) WithDefaults() Config {
	c.MaxBatch = cmp.Or(c.MaxBatch, MaxBatchDefault)
	c.CallbackHeader = cmp.Or(c.CallbackHeader, CallbackHeaderDefault)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem with c (errors.Join), in words that say
// what to fix. It expects defaults to be filled in already.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("mockapi: "+format, args...)) }
	check := func(name string, value any, err error) {
		if err != nil {
			bad("%s %v (got %v)", name, err, value)
		}
	}
	switch {
	case strings.TrimSpace(c.SID) == "":
		bad("SID is empty: set the SID clients will put in the path")
	case strings.Contains(c.SID, "/"):
		bad("SID %q contains '/': use a single path segment", c.SID)
	}
	if c.APIKey == "" {
		bad("API key is empty: set the key clients must send")
	}
	if c.MaxBatch < 1 {
		bad("max batch must be at least 1, got %d", c.MaxBatch)
	}
	check("rate", c.Rate, CheckRate(c.Rate))
	if c.Latency < 0 || c.Jitter < 0 {
		bad("latency and jitter must not be negative, got %s and %s", c.Latency, c.Jitter)
	}
	check("fail rate", c.FailRate, CheckFraction(c.FailRate))
	check("reset rate", c.ResetRate, CheckFraction(c.ResetRate))
	check("fail rate plus reset rate", c.FailRate+c.ResetRate, CheckFaultRates(c.FailRate, c.ResetRate))
	check("callback URL", c.CallbackURL, CheckCallbackURL(c.CallbackURL))
	if c.CallbackDelay < 0 || c.CallbackJitter < 0 {
		bad("callback delay and jitter must not be negative, got %s and %s", c.CallbackDelay, c.CallbackJitter)
	}
	check("callback duplicate rate", c.CallbackDuplicateRate, CheckFraction(c.CallbackDuplicateRate))
	check("callback refuse rate", c.CallbackRefuseRate, CheckFraction(c.CallbackRefuseRate))
	check("capable fraction", c.CapableFraction, CheckFraction(c.CapableFraction))
	check("flip fraction", c.FlipFraction, CheckFraction(c.FlipFraction))
	check("reject suffix", c.RejectSuffix, CheckRejectSuffix(c.RejectSuffix))
	return errors.Join(errs...)
}

// The checks below say what is wrong with one value of [Config], if
// anything, without naming it: the caller does (Validate, or the command
// line's own checks).

// CheckRate checks Rate: 0 (no limit) or at least 1.
func CheckRate(r float64) error {
	if r != 0 && !(r >= 1) || math.IsInf(r, 0) {
		return errors.New("must be 0 (no limit) or at least 1")
	}
	return nil
}

// CheckFraction checks a fraction (FailRate, ResetRate, the callback rates,
// CapableFraction): between 0 and 1.
func CheckFraction(f float64) error {
	if !(f >= 0 && f <= 1) { // true for NaN
		return errors.New("must be between 0 and 1")
	}
	return nil
}

// CheckFaultRates checks that FailRate plus ResetRate does not exceed 1,
// when each is a fraction (CheckFraction reports the others).
func CheckFaultRates(fail, reset float64) error {
	if CheckFraction(fail) == nil && CheckFraction(reset) == nil && fail+reset > 1 {
		return errors.New("must not exceed 1")
	}
	return nil
}

// CheckRejectSuffix checks RejectSuffix: digits only.
func CheckRejectSuffix(s string) error {
	if strings.Trim(s, "0123456789") != "" {
		return errors.New("must be digits only")
	}
	return nil
}

// CheckCallbackURL checks CallbackURL: empty, or an http:// or https://
// URL with a host.
func CheckCallbackURL(s string) error {
	if s == "" {
		return nil
	}
	if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http:// or https:// URL such as http://127.0.0.1:8081/callback")
	}
	return nil
}
