package ratelimit

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// KeyDefault is the Redis key of the fleet's limiter when Config.Key is empty.
const KeyDefault = "capcheck:ratelimit"

// headroom is the fraction of Limit.Rate held back: slots are spaced
// 1/(Rate·(1-headroom)) apart, so a 1-second window has room for about
// headroom·1s (20 ms) of timing noise (late timers, scheduling, network)
// without carrying more than Rate+1 requests. The fleet still reaches 98% of
// Rate, above the 95% the product promises.
const headroom = 0.02

// Limit is a rate of requests for the whole fleet.
type Limit struct {
	// Rate is the number of requests per second.
	Rate float64
}

// PerSecond returns a limit of n requests per second.
func PerSecond(n float64) Limit { return Limit{Rate: n} }

// String returns the limit as "200 req/s".
func (l Limit) String() string {
	return strconv.FormatFloat(l.Rate, 'f', -1, 64) + " req/s"
}

// Scripter is the part of a go-redis client the limiter uses to run its Lua
// script. *redis.Client, *redis.ClusterClient and *redis.Ring satisfy it; it
// is the same method set as redis.Scripter.
type Scripter interface {
	Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd
	EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd
	EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd
	EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd
	ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd
	ScriptLoad(ctx context.Context, script string) *redis.StringCmd
}

var _ redis.Scripter = Scripter(nil)

// Config configures a Limiter. Every replica of a fleet must use the same Key
// and Limit.
type Config struct {
	// Key is the Redis key (a hash) that holds the fleet's limiter state.
	// Replicas that share it share one limit. Defaults to KeyDefault
	// ("capcheck:ratelimit").
	Key string

	// Limit is the fleet-wide rate of requests. Required: there is no
	// default.
	Limit Limit
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Key == "" {
		c.Key = KeyDefault
	}
	return c
}

// maxRate bounds Limit.Rate so that a slot is at least 1µs long.
const maxRate = 1e6 * (1 - headroom)

// Validate reports what is wrong with c, with a message that says what to fix.
func (c Config) Validate() error {
	r := c.Limit.Rate
	switch {
	case math.IsNaN(r) || r <= 0:
		return fmt.Errorf("ratelimit: the rate is %v; set a positive number of requests per second for the whole fleet (e.g. ratelimit.PerSecond(200))", r)
	case r > maxRate:
		return fmt.Errorf("ratelimit: the rate %v is above the highest supported, %v requests per second; set a lower rate", r, maxRate)
	case c.Key == "":
		return errors.New("ratelimit: the Redis key is empty; leave it unset for the default " + KeyDefault + " or name one")
	}
	return nil
}

// Limiter spaces requests evenly for a whole fleet of replicas sharing one
// Redis. It is safe for concurrent use; create one per process.
type Limiter struct {
	rdb   Scripter
	key   []string
	limit Limit

	interval string // slot length, µs, as the script's argument
	// toleranceUS is how late (on the Redis clock) a slot may be taken, see
	// lateTolerance; tolerance is the same as the script's argument.
	toleranceUS float64
	tolerance   string

	local *rate.Limiter // paces this replica's reservations
	slot  chan struct{} // 1-slot semaphore: at most one reservation outstanding
}

// New returns a Limiter that shares cfg.Limit with every other Limiter using
// the same Redis and cfg.Key. It does not talk to Redis.
func New(rdb Scripter, cfg Config) (*Limiter, error) {
	if rdb == nil {
		return nil, errors.New("ratelimit: the Redis client is nil; pass a *redis.Client (or another Scripter)")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := cfg.Limit.Rate
	tol := lateTolerance(r)
	return &Limiter{
		rdb:         rdb,
		key:         []string{cfg.Key},
		limit:       cfg.Limit,
		interval:    formatUS(1e6 / (r * (1 - headroom))),
		toleranceUS: tol * 1e6,
		tolerance:   formatUS(tol * 1e6),
		// Burst: the requests the tolerance lets a late replica catch up
		// on, so that the local limiter's own late timers do not cost
		// throughput.
		local: rate.NewLimiter(rate.Limit(r), 1+int(r*tol)),
		slot:  make(chan struct{}, 1),
	}, nil
}

// lateTolerance returns how late, in seconds, a slot may be taken for any
// 1-second window to still carry at most rate+1 requests, halved: the other
// half is left for the time between the limiter's last look at Redis and the
// request itself. It is about 10 ms at high rates, more at low ones.
//
// Slots are spaced iv = 1/(rate·(1-headroom)) apart. If each request leaves
// within S of its slot's start, a window [x, x+1s) holds only requests whose
// slots start in (x-S, x+1s): at most ceil((1s+S)/iv) of them, which is at
// most floor(rate)+1 while S ≤ (floor(rate)+1)·iv - 1s. The tolerance is half
// that S.
func lateTolerance(r float64) float64 {
	iv := 1 / (r * (1 - headroom))
	return ((math.Floor(r)+1)*iv - 1) / 2
}

// Limit returns the limit l was created with.
func (l *Limiter) Limit() Limit { return l.limit }

// Wait blocks until the caller may send one request, and returns how long it
// waited. It returns an error, and no permit, when ctx ends (ctx.Err()) or
// Redis fails; the caller should then not send.
//
// The goroutines of one process queue in order; one at a time reserves the
// fleet's next slot in Redis, sleeps until it starts, checks that the fleet
// was not paused meanwhile, and returns.
func (l *Limiter) Wait(ctx context.Context) (waited time.Duration, err error) {
	begin := time.Now()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	select {
	case l.slot <- struct{}{}:
	case <-ctx.Done():
		return time.Since(begin), ctx.Err()
	}
	defer func() { <-l.slot }()

	err = l.wait(ctx)
	return time.Since(begin), err
}

// maxLate is how many slots in a row one Wait gives up for being late before
// it takes a late one anyway: on a machine that stalls that often, a
// slightly crowded window is better than a worker that never sends.
const maxLate = 3

// wait takes a slot; the caller holds l.slot.
func (l *Limiter) wait(ctx context.Context) error {
	for void := 0; ; {
		// Pace this replica locally first: it keeps one replica at or
		// below the rate even if the Redis state were lost, and costs
		// nothing when the fleet is the tighter limit.
		r := l.local.Reserve()
		if err := sleep(ctx, r.Delay()); err != nil {
			r.Cancel()
			return err
		}

		sent := time.Now()
		st, err := l.run(ctx, "reserve", l.interval, l.tolerance)
		if err != nil {
			return fmt.Errorf("ratelimit: reserving a slot: %w", err)
		}
		start := st.x
		if start <= st.now {
			// The slot has started (at most the tolerance ago), and
			// Redis has just checked the pause.
			return nil
		}
		// Sleep until the slot starts, counted from when the request left:
		// the confirming request then reaches Redis about when the slot
		// starts (when the network is as fast both ways).
		if err := sleep(ctx, time.Until(sent.Add(usToDuration(start-st.now)))); err != nil {
			return err
		}
		ok, err := l.confirm(ctx, start, void >= maxLate)
		if err != nil || ok {
			return err
		}
		void++ // late or paused: take another slot
	}
}

// confirm checks, right before the caller sends, that the slot starting at
// start (µs, Redis clock) may still be used: a 429 may have paused the fleet
// meanwhile, and a holder that overslept (later than l.toleranceUS) must not
// crowd the slots after its own, unless acceptLate.
func (l *Limiter) confirm(ctx context.Context, start float64, acceptLate bool) (bool, error) {
	st, err := l.run(ctx, "peek")
	if err != nil {
		return false, fmt.Errorf("ratelimit: checking the fleet pause: %w", err)
	}
	switch {
	case st.pause > st.now:
		return false, nil // paused: reserve a slot after the pause
	case st.now-start > l.toleranceUS && !acceptLate:
		return false, nil // too late
	case st.now < start:
		// A little early: wait the rest. The pause was checked that
		// little while ago.
		if err := sleep(ctx, usToDuration(start-st.now)); err != nil {
			return false, err
		}
	}
	return true, nil
}

// Pause stops the whole fleet from sending for d, counted from now on the
// Redis clock; call it when the API answers 429 with Retry-After. A pause
// never shortens one already in force. Requests resume evenly spaced after it.
func (l *Limiter) Pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if _, err := l.run(ctx, "pause", formatUS(float64(d)/float64(time.Microsecond))); err != nil {
		return fmt.Errorf("ratelimit: pausing the fleet for %v: %w", d, err)
	}
	return nil
}

// PausedFor returns how long the fleet's pause still lasts, 0 when the fleet
// is not paused.
func (l *Limiter) PausedFor(ctx context.Context) (time.Duration, error) {
	st, err := l.run(ctx, "peek")
	if err != nil {
		return 0, fmt.Errorf("ratelimit: reading the fleet pause: %w", err)
	}
	if st.pause <= st.now {
		return 0, nil
	}
	return usToDuration(st.pause - st.now), nil
}

//go:embed gcra.lua
var scriptSrc string

var script = redis.NewScript(scriptSrc)

// state is the script's answer, in µs on the Redis clock.
type state struct {
	now, pause float64
	x          float64 // reserve: the slot's start; else the tat
}

func (l *Limiter) run(ctx context.Context, mode string, args ...any) (state, error) {
	vals, err := script.Run(ctx, l.rdb, l.key, append([]any{mode}, args...)...).StringSlice()
	if err != nil {
		return state{}, err
	}
	if len(vals) != 3 {
		return state{}, fmt.Errorf("unexpected script answer %q", vals)
	}
	var st state
	for i, p := range []*float64{&st.now, &st.pause, &st.x} {
		if *p, err = strconv.ParseFloat(vals[i], 64); err != nil {
			return state{}, fmt.Errorf("unexpected script answer %q: %w", vals, err)
		}
	}
	return st, nil
}

// formatUS formats µs for the script, with sub-µs precision.
func formatUS(us float64) string { return strconv.FormatFloat(us, 'f', 3, 64) }

func usToDuration(us float64) time.Duration {
	return time.Duration(math.Ceil(us * float64(time.Microsecond)))
}

// sleep waits for d or until ctx ends, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
