package ratelimit

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/capcheck/capcheck/internal/sleep"
)

// KeyDefault is the Redis key of the fleet's limiter when Config.Key is empty.
const KeyDefault = "capcheck:ratelimit"

// headroom is the fraction of Limit.Rate held back: slots are spaced
// 1/(Rate·(1-headroom)) apart, so a 1-second window has room for
// sendBound (about 10 ms at 200 req/s, 6 ms at 1000) of lateness without
// carrying more than Rate+1 requests. A request later than that after its
// slot started is not sent late (see [Permit.Ready]), so the room is for the
// noise after the last check: the socket, the network and the API's own
// clock. 0.5% drew 429s from the simulator on a loaded host while it counted
// a request when its handler ran, not when it arrived (docs/benchmarks.md).
const headroom = 0.005

// PauseMax is the longest fleet pause: [Limiter.Pause] caps what it is asked
// for (a 429's Retry-After) at it.
const PauseMax = 5 * time.Minute

// pauseSlack is added to PauseMax for the pause the script accepts from the
// hash: room for a Redis clock that stepped back a little after a failover.
const pauseSlack = time.Minute

// pauseLimit is the furthest ahead of now a pause read from the hash may be;
// one further is taken to end then (see gcra.lua).
const pauseLimit = PauseMax + pauseSlack

// pauseLimitArg is pauseLimit as the script's argument.
var pauseLimitArg = formatUS(durationToUS(pauseLimit))

// slotsAheadMax bounds how many slots ahead of now (or of the pause's end) the
// hash's tat may be: room for 1024 replicas, each holding one reservation.
// The lead is never above pauseLimit either, so that at low rates a bad tat
// blocks the fleet no longer than a bad pause would.
const slotsAheadMax = 1024

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

	// Logger gets a warning when another replica sharing Key uses a
	// different Limit. Defaults to slog.Default().
	Logger *slog.Logger
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

// Validate reports everything wrong with c (errors.Join), with messages
// that say what to fix.
func (c Config) Validate() error {
	var errs []error
	switch r := c.Limit.Rate; {
	case math.IsNaN(r) || r <= 0:
		errs = append(errs, fmt.Errorf("ratelimit: the rate is %v; set a positive number of requests per second for the whole fleet (e.g. ratelimit.PerSecond(200))", r))
	case r > maxRate:
		errs = append(errs, fmt.Errorf("ratelimit: the rate %v is above the highest supported, %v requests per second; set a lower rate", r, maxRate))
	}
	if c.Key == "" {
		errs = append(errs, errors.New("ratelimit: the Redis key is empty; leave it unset for the default "+KeyDefault+" or name one"))
	}
	return errors.Join(errs...)
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
	leadLimit   string // µs: how far ahead the hash's tat may be, see slotsAheadMax

	// clk is the local clock; with scriptNow set (tests only), the script
	// takes clk's time as its own instead of reading Redis's.
	clk       clock
	scriptNow bool

	local *rate.Limiter // paces this replica's reservations
	slot  chan struct{} // 1-slot semaphore: at most one reservation outstanding
	next  reservation   // guarded by slot: taken for the next holder, or zero
	// seen is the start (µs, Redis clock) of the latest slot this replica
	// was handed, 0 before the first; guarded by slot. The script learns
	// from it that its state lost writes (see gcra.lua).
	seen float64
	// queued counts the goroutines in Wait that do not hold slot yet.
	queued atomic.Int64
	// rider is the holder's work that goes in the next round trip for its
	// permit (TakeRiding), nil when none is left; guarded by slot.
	rider Rider

	// sendBound is how long after its slot started a request may still be
	// written (see Permit.Ready).
	sendBound time.Duration
	// confirmLate (µs, the script's argument) is how late a held slot may
	// still be confirmed: the send bound less the margin for what follows
	// the confirmation before the write. Permit.Ready guards the rest.
	confirmLate string
	log         *slog.Logger
	// fleetIV is the last fleet slot interval the script answered that
	// differs from this replica's ("" when none did): warned about once per
	// value.
	fleetIV atomic.Pointer[string]

	permits, voidedLate, voidedPaused, voidedSend, roundTrips atomic.Int64 // see Stats
}

// Stats counts what a Limiter has done since it was created.
type Stats struct {
	// Permits is the number of Waits that returned a permit.
	Permits int64
	// VoidedLate is the number of slots given up because the holder woke
	// too late to use them without crowding the next ones: a sign of a
	// machine (or a Redis) too busy to keep time.
	VoidedLate int64
	// VoidedPaused is the number of slots given up because a fleet pause
	// began after they were reserved.
	VoidedPaused int64
	// VoidedAtSend is the number of permits given up by [Permit.Ready]
	// because the request was about to be written more than the send bound
	// after its slot started (a stall between the permit and the write).
	VoidedAtSend int64
	// RoundTrips is the number of the limiter's script calls to Redis
	// (reserving, confirming, pausing and reading the pause).
	RoundTrips int64
}

// Stats returns the limiter's counts so far, for metrics.
func (l *Limiter) Stats() Stats {
	return Stats{
		Permits:      l.permits.Load(),
		VoidedLate:   l.voidedLate.Load(),
		VoidedPaused: l.voidedPaused.Load(),
		VoidedAtSend: l.voidedSend.Load(),
		RoundTrips:   l.roundTrips.Load(),
	}
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
	iv := 1e6 / (r * (1 - headroom))
	return &Limiter{
		rdb:         rdb,
		key:         []string{cfg.Key},
		limit:       cfg.Limit,
		interval:    formatUS(iv),
		toleranceUS: tol * 1e6,
		tolerance:   formatUS(tol * 1e6),
		leadLimit:   formatUS(min(slotsAheadMax*iv, durationToUS(pauseLimit))),
		clk:         realClock{},
		// Burst: the requests the tolerance lets a late replica catch up
		// on, so that the local limiter's own late timers do not cost
		// throughput.
		local:       rate.NewLimiter(rate.Limit(r), 1+int(r*tol)),
		slot:        make(chan struct{}, 1),
		sendBound:   usToDuration(2 * tol * 1e6),
		confirmLate: formatUS(max(tol, 2*tol-durationToUS(confirmMargin)/1e6) * 1e6),
		log:         cmp.Or(cfg.Logger, slog.Default()),
	}, nil
}

// lateTolerance returns how late, in seconds, a slot may be taken for any
// 1-second window to still carry at most rate+1 requests, halved: the other
// half is left for the time between the limiter's last look at Redis and the
// request itself ([Permit.Ready] enforces the whole). It is about 3 ms at
// high rates, more at low ones (5 ms at 200 req/s).
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

// Client returns the Redis client l was created with.
func (l *Limiter) Client() Scripter { return l.rdb }

// Limit returns the limit l was created with.
func (l *Limiter) Limit() Limit { return l.limit }

// Wait blocks until the caller may send one request, and returns how long it
// waited. It returns an error, and no permit, when ctx ends (ctx.Err()) or
// Redis fails; the caller should then not send. [Limiter.Take] does the same
// and returns the permit, to check right before the request is written.
//
// The goroutines of one process queue in order; one at a time takes the
// fleet's next slot in Redis, sleeps until it starts, checks that the fleet
// was not paused meanwhile, and returns (see the package documentation).
func (l *Limiter) Wait(ctx context.Context) (waited time.Duration, err error) {
	begin := l.clk.Now()
	_, err = l.Take(ctx)
	return l.clk.Now().Sub(begin), err
}

// Permit is the right to send one request in a slot of the fleet's. Give it
// to the code that writes the request (capapi.WithSendGate), which calls
// Ready right before the request goes on the wire.
type Permit struct {
	l *Limiter
	// start is when the slot started on the local clock: an estimate a
	// little early (by the Redis round trip's way back), so that lateness is
	// never underestimated.
	start time.Time
}

// Take blocks until the caller may send one request, like [Limiter.Wait],
// and returns the permit. It returns an error, and no permit, when ctx ends
// (ctx.Err()) or Redis fails; the caller should then not send.
func (l *Limiter) Take(ctx context.Context) (*Permit, error) {
	return l.TakeAfter(ctx, nil)
}

// TakeAfter is [Limiter.Take], running first (when not nil) once the
// caller is next in this replica's queue, before it waits for its slot: for
// work that must be done before the request but not sooner (the worker
// writes its lanes' outcomes there), done while the replica's previous slot
// runs out rather than in the caller's own. An error from first is returned
// as it is, with no permit. The slot is taken as Take takes it.
func (l *Limiter) TakeAfter(ctx context.Context, first func(context.Context) error) (*Permit, error) {
	if err := l.enter(ctx); err != nil {
		return nil, err
	}
	defer l.leave()

	if first != nil {
		if err := first(ctx); err != nil {
			return nil, err
		}
	}
	start, err := l.wait(ctx)
	if err != nil {
		return nil, err
	}
	l.permits.Add(1)
	return &Permit{l: l, start: start}, nil
}

// Rider is work for Redis that is due before the caller's request but not
// sooner: [Limiter.TakeRiding] sends it in the round trip the limiter makes
// for the permit anyway (confirming the slot, usually), so that it costs no
// round trip of its own. The worker writes its lanes' outcomes so.
type Rider interface {
	// Queue queues the commands on pipe, a pipeline of the limiter's own
	// client that runs them ahead of the limiter's command (on one Redis;
	// a Cluster runs each node's share of it at once), and returns
	// what reads their answers once it has run (its error, when not nil,
	// is returned with no permit).
	Queue(ctx context.Context, pipe redis.Pipeliner) (settle func() error)
	// Alone does the work in a round trip of its own, when the permit
	// needed none of the limiter's (or its client has no pipelines).
	Alone(ctx context.Context) error
}

// TakeRiding is [Limiter.Take], sending r's commands in the permit's round
// trip to Redis, ahead of the limiter's own (see [Rider]); when the permit
// needs no round trip, r does its work alone before Take returns. Either
// way, r's work is done when TakeRiding returns a permit. Give r's commands
// to the limiter's client only: they go to the same Redis.
func (l *Limiter) TakeRiding(ctx context.Context, r Rider) (*Permit, error) {
	if err := l.enter(ctx); err != nil {
		return nil, err
	}
	defer l.leave()

	_, rides := l.rdb.(pipeliner)
	if rides {
		l.rider = r
	}
	start, err := l.wait(ctx)
	alone := !rides || l.rider != nil // no round trip took it
	l.rider = nil
	if err != nil {
		return nil, err
	}
	if alone {
		if err := r.Alone(ctx); err != nil {
			return nil, err
		}
	}
	l.permits.Add(1)
	return &Permit{l: l, start: start}, nil
}

// enter waits for the caller's turn in the replica's queue: to hold l.slot,
// until leave.
func (l *Limiter) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.queued.Add(1)
	defer l.queued.Add(-1)
	select {
	case l.slot <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Limiter) leave() { <-l.slot }

// pipeliner is a client that sends commands in pipelines; go-redis's
// clients are.
type pipeliner interface {
	Pipeline() redis.Pipeliner
}

// Late returns how long ago the permit's slot started.
func (p *Permit) Late() time.Duration { return p.l.clk.Now().Sub(p.start) }

// Ready is called right before the request is written to the connection. It
// returns at once while the slot started at most the send bound ago (about
// 10 ms at 200 req/s, 6 ms at 1000; see lateTolerance). A later request
// would crowd the slots after its own into one window, so its slot is given
// up (counted in Stats.VoidedAtSend) and a new one taken, as Take does, as
// often as it takes: a request is never written late. An error (ctx ended,
// Redis failed) means no permit, and the request must not be sent.
func (p *Permit) Ready(ctx context.Context) error {
	for p.Late() > p.l.sendBound {
		p.l.voidedSend.Add(1)
		np, err := p.l.Take(ctx)
		if err != nil {
			return err
		}
		p.start = np.start
	}
	return nil
}

// maxLate is how many slots in a row one Wait gives up for being late before
// it takes a late one anyway: on a machine that stalls that often, a
// slightly crowded window is better than a worker that never sends.
const maxLate = 3

// confirmMargin is the time left, of the send bound, between a slot's
// confirmation and the request's write: a Redis read by the caller and the
// request's encoding, well under a millisecond on a healthy host.
const confirmMargin = time.Millisecond

// fresh is how recently Redis must have checked the pause for a slot that has
// already started to be used without checking again.
const fresh = time.Millisecond

// reservation is a slot taken in Redis.
type reservation struct {
	start float64   // µs, Redis clock
	now   float64   // µs, Redis clock, when the slot was taken
	sent  time.Time // local clock, when the request that took it left
	ep    string    // the epoch of the state that handed it out
}

// due returns when the slot starts on the local clock, counted from when the
// request that took it left: a confirming request sent then reaches Redis
// about when the slot starts (when the network is as fast both ways).
func (r reservation) due() time.Time { return r.sent.Add(usToDuration(r.start - r.now)) }

// wait takes a slot and returns when it started on the local clock; the
// caller holds l.slot.
func (l *Limiter) wait(ctx context.Context) (time.Time, error) {
	// Pace this replica locally first: it keeps one replica at or below the
	// rate even if the Redis state were lost, and costs nothing when the
	// fleet is the tighter limit.
	now := l.clk.Now()
	r := l.local.ReserveN(now, 1)
	if err := l.clk.Sleep(ctx, r.DelayFrom(now)); err != nil {
		r.CancelAt(l.clk.Now())
		return time.Time{}, err
	}

	// The last holder may have taken a slot for us (see below); if no one
	// came for it in time, it is gone.
	res, ok := l.next, l.next != (reservation{})
	l.next = reservation{}
	if ok && l.clk.Now().Sub(res.due()) > usToDuration(l.toleranceUS) {
		ok = false
	}
	if ok && res.start <= res.now && l.clk.Now().Sub(res.sent) < fresh {
		// The slot started (at most the tolerance ago) when Redis
		// checked the pause, a moment ago.
		return res.due(), nil
	}
	if !ok {
		sent := l.clk.Now()
		st, err := l.run(ctx, "reserve", "")
		if err != nil {
			return time.Time{}, fmt.Errorf("ratelimit: reserving a slot: %w", err)
		}
		res = reservation{start: st.x, now: st.now, sent: sent, ep: st.ep}
		if st.x <= st.now {
			// The slot has started (at most the tolerance ago), and
			// Redis has just checked the pause.
			return res.due(), nil
		}
	}

	for void := 0; ; void++ {
		if err := l.clk.Sleep(ctx, res.due().Sub(l.clk.Now())); err != nil {
			return time.Time{}, err
		}
		// Right before the caller sends: a 429 may have paused the fleet
		// meanwhile, and a holder that overslept must not crowd the slots
		// after its own. Either voids the slot and takes a new one. If
		// goroutines are queued, take the next slot for the next holder
		// in the same call: this replica then still has one reservation
		// outstanding, and a permit costs one round trip, not two.
		acceptLate := "0"
		if void >= maxLate {
			acceptLate = "1"
		}
		wantNext := "0"
		if l.queued.Load() > 0 {
			wantNext = "1"
		}
		sent := l.clk.Now()
		st, err := l.run(ctx, "confirm", res.ep, formatUS(res.start), acceptLate, wantNext, l.confirmLate)
		if err != nil {
			return time.Time{}, fmt.Errorf("ratelimit: confirming a slot: %w", err)
		}
		if !st.renewed {
			if st.hasNext {
				l.next = reservation{start: st.next, now: st.now, sent: sent, ep: st.ep}
			}
			// The slot stands. A little early if the clocks' rates
			// differ slightly: wait the rest.
			res = reservation{start: res.start, now: st.now, sent: sent, ep: st.ep}
			return res.due(), l.clk.Sleep(ctx, usToDuration(res.start-st.now))
		}
		if st.pause > st.now {
			l.voidedPaused.Add(1)
		} else {
			l.voidedLate.Add(1)
		}
		res = reservation{start: st.x, now: st.now, sent: sent, ep: st.ep}
		if st.x <= st.now {
			return res.due(), nil // the new slot has started (catching up)
		}
	}
}

// Pause stops the whole fleet from sending for d, at most PauseMax, counted
// from now on the Redis clock; call it when the API answers 429 with
// Retry-After. A pause never shortens one already in force, and d <= 0 does
// nothing. Requests resume evenly spaced after it.
func (l *Limiter) Pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	d = min(d, PauseMax)
	if _, err := l.run(ctx, "pause", "", formatUS(durationToUS(d))); err != nil {
		return fmt.Errorf("ratelimit: pausing the fleet for %v: %w", d, err)
	}
	return nil
}

// PausedFor returns how long the fleet's pause still lasts, 0 when the fleet
// is not paused.
func (l *Limiter) PausedFor(ctx context.Context) (time.Duration, error) {
	st, err := l.run(ctx, "peek", "")
	if err != nil {
		return 0, fmt.Errorf("ratelimit: reading the fleet pause: %w", err)
	}
	return st.pausedFor(), nil
}

// FleetPause returns how long the pause of the fleet whose limiter state is
// at key (KeyDefault when empty) still lasts, 0 when it is not paused: what a
// Limiter's PausedFor says, for a command that does not send requests. It
// only reads.
func FleetPause(ctx context.Context, rdb Scripter, key string) (time.Duration, error) {
	l := &Limiter{rdb: rdb, key: []string{cmp.Or(key, KeyDefault)}, interval: "0", tolerance: "0", leadLimit: "0", clk: realClock{}}
	return l.PausedFor(ctx)
}

func (st state) pausedFor() time.Duration {
	if st.pause <= st.now {
		return 0
	}
	return usToDuration(st.pause - st.now)
}

//go:embed gcra.lua
var scriptSrc string

var script = redis.NewScript(scriptSrc)

// Load loads the limiter's script into Redis's script cache (on every node
// of a Cluster), so that the first permit after Redis started, or flushed
// its scripts, is not refused as NOSCRIPT and sent again whole, then
// compiled, on the way to its slot. Optional: the script is loaded when
// missing anyway.
func (l *Limiter) Load(ctx context.Context) error {
	if err := script.Load(ctx, l.rdb).Err(); err != nil {
		return fmt.Errorf("ratelimit: loading the script: %w", err)
	}
	return nil
}

// state is the script's answer, in µs on the Redis clock.
type state struct {
	now, pause float64
	x          float64 // reserve, confirm: the slot's start; else the tat
	renewed    bool    // confirm took a new slot
	next       float64 // confirm: the next slot's start, if hasNext
	hasNext    bool
	ep         string // reserve, confirm: the state's epoch
}

// run runs the script in mode with the arguments every mode takes (ep is
// the epoch of the slot confirm holds), then the mode's own. In the modes
// that hand out slots the caller holds l.slot.
func (l *Limiter) run(ctx context.Context, mode, ep string, args ...any) (state, error) {
	now := ""
	if l.scriptNow {
		now = formatUS(float64(l.clk.Now().UnixNano()) / 1e3)
	}
	hands := mode == "reserve" || mode == "confirm"
	seen := ""
	if hands && l.seen > 0 {
		seen = formatUS(l.seen)
	}
	argv := make([]any, 0, 8+len(args))
	argv = append(argv, mode, now, l.interval, l.tolerance, pauseLimitArg, l.leadLimit, seen, ep)
	argv = append(argv, args...)
	l.roundTrips.Add(1)
	var cmd *redis.Cmd
	// l.rider is the slot holder's: read only in the modes that hold it
	// (Pause and PausedFor do not).
	if hands && l.rider != nil {
		r := l.rider
		l.rider = nil
		var err error
		if cmd, err = l.runRiding(ctx, r, argv); err != nil {
			return state{}, err
		}
	} else {
		cmd = script.Run(ctx, l.rdb, l.key, argv...)
	}
	vals, err := cmd.StringSlice()
	if err != nil {
		return state{}, err
	}
	if len(vals) != 7 {
		return state{}, fmt.Errorf("unexpected script answer %q", vals)
	}
	if hands && vals[5] != l.interval {
		l.fleetRate(vals[5])
	}
	st := state{renewed: vals[3] == "1", hasNext: vals[4] != "", ep: vals[6]}
	fields := [...]struct {
		i int
		p *float64
	}{{0, &st.now}, {1, &st.pause}, {2, &st.x}, {4, &st.next}}
	n := len(fields)
	if !st.hasNext {
		n--
	}
	for _, f := range fields[:n] {
		if *f.p, err = strconv.ParseFloat(vals[f.i], 64); err != nil {
			return state{}, fmt.Errorf("unexpected script answer %q: %w", vals, err)
		}
	}
	if hands {
		l.seen = max(l.seen, st.x, st.next)
	}
	return st, nil
}

// runRiding runs the script with argv in one pipeline after r's commands
// (see Rider). The pipeline is not canceled with ctx once r's commands are
// in it: they may be other callers' work (the client's timeouts bound it).
func (l *Limiter) runRiding(ctx context.Context, r Rider, argv []any) (*redis.Cmd, error) {
	pipe := l.rdb.(pipeliner).Pipeline()
	settle := r.Queue(ctx, pipe)
	if pipe.Len() > 0 {
		ctx = context.WithoutCancel(ctx)
	}
	cmd := script.EvalSha(ctx, pipe, l.key, argv...)
	_, _ = pipe.Exec(ctx) // each command's error is read on its own
	if settle != nil {
		if err := settle(); err != nil {
			return nil, err
		}
	}
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The server lost its scripts (a restart, a failover): Run loads it.
		cmd = script.Run(ctx, l.rdb, l.key, argv...)
	}
	return cmd, nil
}

// fleetRate warns, once per value, that the fleet spaces slots by iv (µs),
// another replica's longer interval than this one's: replicas sharing the
// key were started with different rates, and the lowest one is used.
func (l *Limiter) fleetRate(iv string) {
	if last := l.fleetIV.Load(); last != nil && *last == iv {
		return
	}
	l.fleetIV.Store(&iv)
	us, err := strconv.ParseFloat(iv, 64)
	if err != nil || us <= 0 {
		return
	}
	fleet := PerSecond(math.Round(1e6/(us*(1-headroom))*1000) / 1000)
	l.log.Warn("replicas sharing the rate limit were started with different rates: the fleet sends at the lowest rate among the replicas sending",
		"rate", l.limit.String(), "fleet_rate", fleet.String(), "key", l.key[0])
}

// formatUS formats µs for the script, with sub-µs precision.
func formatUS(us float64) string { return strconv.FormatFloat(us, 'f', 3, 64) }

// usToDuration converts µs to a Duration, saturating rather than wrapping
// around on a value out of range.
func usToDuration(us float64) time.Duration {
	ns := math.Ceil(us * float64(time.Microsecond))
	switch {
	case ns >= math.MaxInt64:
		return math.MaxInt64
	case ns <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(ns)
}

func durationToUS(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// clock is the limiter's local time: the real one, or a test's.
type clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx ends, whichever is first.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time                                   { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error { return sleep.Precisely(ctx, d) }
