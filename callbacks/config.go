// Package callbacks is the HTTP receiver of the provider's capability
// callbacks (capcheck callbacks, run --callback-listen).
//
// A callback is POST, PUT or GET at /callback carrying a number and a
// status: a JSON object, a JSON array of objects, a form body or the query
// string, the fields named by dot paths. The receiver checks the token, the
// source address and the size, normalizes the number to E.164, maps the
// status to capable / not capable / unknown, and answers 2xx only once the
// callback is written to Redis, and to a replica when the master has any
// (WAIT: a failover then loses no acknowledged callback). Concurrent requests are written together:
// a committer takes every callback waiting and writes them in one
// pipelined round trip ([capstore.Store.Ingest]), so the Redis work per
// callback shrinks as load grows. Receivers hold no state of their own:
// any number of them may share one Redis behind a load balancer.
package callbacks

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/phonenorm"
)

// Defaults of [Config].
const (
	HeaderDefault        = "Authorization"
	NumberFieldDefault   = "number"
	StatusFieldDefault   = "status"
	MaxBodyDefault       = 1 << 20
	QueueLimitDefault    = 20_000
	MaxBatchDefault      = 1_000
	CommittersDefault    = 4
	CommitTimeoutDefault = 10 * time.Second
)

// CapableDefault and NotCapableDefault are the status values read as
// capable and not capable when none are configured (compared without
// regard to case).
var (
	CapableDefault    = []string{"capable", "true", "yes", "1"}
	NotCapableDefault = []string{"not_capable", "false", "no", "0"}
)

// Config configures a [Receiver].
type Config struct {
	// Token is the shared secret the callback profile sends in Header,
	// alone, as "Bearer <token>", or as basic auth ("Basic " and the
	// base64 of the token, which is then "user:password"). Empty accepts
	// every request: the caller allows that on a loopback address only.
	// Never logged.
	Token string

	// Header is the request header carrying the token. Defaults to
	// HeaderDefault.
	Header string

	// NumberField and StatusField are dot paths ("data.mobile") to the
	// number and status of a callback. Default to NumberFieldDefault and
	// StatusFieldDefault.
	NumberField, StatusField string

	// Capable and NotCapable are the status values read as capable and not
	// capable (case is ignored); any other value is unknown. Default to
	// CapableDefault and NotCapableDefault.
	Capable, NotCapable []string

	// Allow, when not empty, lists the networks callbacks may come from;
	// others get 403. Defaults to empty (any source).
	Allow []netip.Prefix

	// DefaultRegion reads numbers without country code, as enqueue does.
	// Defaults to phonenorm.DefaultRegionDefault.
	DefaultRegion string

	// MaxBody bounds a request body in bytes; larger ones get 413.
	// Defaults to MaxBodyDefault (1 MiB).
	MaxBody int64

	// QueueLimit bounds the callbacks waiting to be written; a request
	// that would pass it gets 503 with Retry-After. Defaults to
	// QueueLimitDefault.
	QueueLimit int

	// MaxBatch bounds the callbacks written in one round trip. Defaults to
	// MaxBatchDefault.
	MaxBatch int

	// Committers is how many batches may be in flight to Redis at once.
	// Defaults to CommittersDefault.
	Committers int

	// CommitTimeout bounds the write of one batch; its requests get 503
	// (the provider retries). Half of it bounds the wait for a replica's
	// confirmation. Defaults to CommitTimeoutDefault.
	CommitTimeout time.Duration

	// OnStored, when not nil, is called with each batch of callbacks once
	// Redis took it, before any of its requests is answered; an error
	// answers them 503 (the provider retries). The embedded run journals
	// callbacks with it.
	OnStored func(cbs []capstore.Callback) error

	// Logger gets one line per refused or bad request (sampled under a
	// flood). Defaults to nil (no logging).
	Logger *slog.Logger

	// Metrics are updated when not nil. Defaults to nil.
	Metrics *Metrics

	// Now is the clock of received callbacks. Defaults to time.Now.
	Now func() time.Time
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.Header = cmp.Or(c.Header, HeaderDefault)
	c.NumberField = cmp.Or(c.NumberField, NumberFieldDefault)
	c.StatusField = cmp.Or(c.StatusField, StatusFieldDefault)
	if len(c.Capable) == 0 {
		c.Capable = CapableDefault
	}
	if len(c.NotCapable) == 0 {
		c.NotCapable = NotCapableDefault
	}
	c.DefaultRegion = cmp.Or(c.DefaultRegion, phonenorm.DefaultRegionDefault)
	c.MaxBody = cmp.Or(c.MaxBody, MaxBodyDefault)
	c.QueueLimit = cmp.Or(c.QueueLimit, QueueLimitDefault)
	c.MaxBatch = cmp.Or(c.MaxBatch, MaxBatchDefault)
	c.Committers = cmp.Or(c.Committers, CommittersDefault)
	c.CommitTimeout = cmp.Or(c.CommitTimeout, CommitTimeoutDefault)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate says what is wrong with c, if anything. It expects defaults
// filled in.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct{ name, path string }{{"number field", c.NumberField}, {"status field", c.StatusField}} {
		if err := CheckField(f.path); err != nil {
			errs = append(errs, fmt.Errorf("callbacks: %s %q %w", f.name, f.path, err))
		}
	}
	if v, ok := Overlap(c.Capable, c.NotCapable); ok {
		errs = append(errs, fmt.Errorf("callbacks: status value %q is both capable and not capable", v))
	}
	if err := CheckHeader(c.Header); err != nil {
		errs = append(errs, fmt.Errorf("callbacks: header name %q %w", c.Header, err))
	}
	if c.MaxBody < 1 || c.QueueLimit < 1 || c.MaxBatch < 1 || c.Committers < 1 || c.CommitTimeout <= 0 {
		errs = append(errs, errors.New("callbacks: body limit, queue limit, batch size, committers and commit timeout must be positive"))
	}
	return errors.Join(errs...)
}

// CheckField says what is wrong with the dot path of a field
// (NumberField, StatusField), if anything.
func CheckField(p string) error {
	if p == "" || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..") {
		return errors.New("must be a field name or a dot path such as data.mobile")
	}
	return nil
}

// CheckHeader says what is wrong with the name of the token's header, if
// anything.
func CheckHeader(h string) error {
	if h == "" || strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r == ':' || r > '~' }) {
		return errors.New("must be an HTTP header name such as Authorization or X-Api-Key")
	}
	return nil
}

// Overlap returns the first value of notCapable that is also in capable
// (as the receiver compares them: case and surrounding space ignored).
func Overlap(capable, notCapable []string) (v string, ok bool) {
	seen := map[string]bool{}
	for _, v := range capable {
		seen[norm(v)] = true
	}
	for _, v := range notCapable {
		if seen[norm(v)] {
			return v, true
		}
	}
	return "", false
}

func norm(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
