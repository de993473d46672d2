package redisconn

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/rawio"
	"github.com/capcheck/capcheck/internal/sleep"
)

// RideThroughDefault is how long a command is retried while Redis does not
// answer: longer than a Sentinel failover with Redis's default
// down-after-milliseconds (30s) or a Cluster failover with its default
// cluster-node-timeout (15s).
const RideThroughDefault = 90 * time.Second

// Options tune the clients of [URL.NewClient].
type Options struct {
	// Logger gets a warning when Redis stops answering, another every 10s
	// while it does not, and a note when it answers again. Defaults to a
	// logger that discards.
	Logger *slog.Logger

	// RideThrough is how long a command that failed because Redis could not
	// be reached (or was failing over, loading, or read-only) is retried,
	// with backoff, before its error is returned. Negative: not at all
	// (go-redis's own few quick retries still apply). Defaults to
	// RideThroughDefault.
	RideThrough time.Duration
}

// NewClient returns a client of the Redis the URL names: a *redis.Client
// for one server, one that follows the master through failovers for
// Sentinel, a *redis.ClusterClient for Cluster. Its commands ride through a
// failover or a restart (see [Options.RideThrough]), except a transaction
// (MULTI/EXEC, WATCH), which fails and is left to its caller, since a retry
// on a new connection would lose what WATCH guards.
func (r *URL) NewClient(o Options) redis.UniversalClient {
	if o.RideThrough == 0 {
		o.RideThrough = RideThroughDefault
	}
	// Riding through, the hook retries: one dial per attempt is enough,
	// where go-redis would try five times.
	dials := 0
	if o.RideThrough > 0 {
		dials = 1
	}
	var c redis.UniversalClient
	switch r.kind {
	case Sentinel:
		f := *r.failover
		f.TLSConfig = cloneTLS(f.TLSConfig)
		f.DialerRetries = cmp.Or(f.DialerRetries, dials)
		c = redis.NewFailoverClient(&f)
	case Cluster:
		cl := *r.cluster
		cl.TLSConfig = cloneTLS(cl.TLSConfig)
		cl.DialerRetries = cmp.Or(cl.DialerRetries, dials)
		c = redis.NewClusterClient(&cl)
	default:
		s := *r.single
		s.TLSConfig = cloneTLS(s.TLSConfig)
		s.DialerRetries = cmp.Or(s.DialerRetries, dials)
		c = redis.NewClient(&s)
	}
	c.AddHook(rawIOHook{})
	if o.RideThrough > 0 {
		log := o.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		h := &rideThrough{budget: o.RideThrough, log: log, target: r.redacted}
		if cc, ok := c.(*redis.ClusterClient); ok {
			// go-redis reloads the slot map on MOVED, or once a minute: a
			// master that died without a word would keep its slots for that
			// long. Reload it on a failure, so a promoted replica is found.
			h.reload = cc.ReloadState
		}
		c.AddHook(h)
	}
	return c
}

// Transient reports whether err says that Redis could not be reached or could
// not serve the command for now (a connection refused or reset, a timeout,
// LOADING, READONLY after a failover, CLUSTERDOWN, TRYAGAIN, MASTERDOWN,
// no reachable sentinel), so that the same command may succeed later. A
// dedicated connection (redis.Conn) that broke is not: it stays broken,
// and every retry fails on it again.
func Transient(err error) bool {
	if err == nil || silent(err) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	s := err.Error()
	for _, p := range []string{"LOADING ", "READONLY ", "MASTERDOWN ", "CLUSTERDOWN ", "TRYAGAIN ", "NOREPLICAS ", "BUSY "} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return strings.Contains(s, "connection pool timeout") ||
		strings.Contains(s, "sentinels specified in configuration are unreachable") ||
		strings.Contains(s, "cluster has no nodes")
}

// badConn is how go-redis says a redis.Conn broke (wrapping the error that
// broke it, io.EOF for one the server closed).
const badConn = "redis: Conn is in a bad state"

// silent reports whether err, not transient, says nothing of Redis
// answering: a dedicated connection that broke (on a master that may
// still be down), a closed client, an ended context.
func silent(err error) bool {
	return err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrClosed) || strings.Contains(err.Error(), badConn))
}

// rideThrough retries commands that failed with a transient error, with
// backoff, for up to budget, and logs the outage once per 10s.
type rideThrough struct {
	budget time.Duration
	log    *slog.Logger
	target string

	// reload, when set, refreshes what the client knows of the topology.
	reload func(ctx context.Context)

	mu       sync.Mutex
	since    time.Time // start of the current outage; zero while Redis answers
	logged   time.Time // last warning
	reloaded time.Time // last reload
}

// reloadEvery bounds how often a failing cluster client reloads its slot map.
const reloadEvery = 250 * time.Millisecond

// outageLogEvery is how often a continuing outage is logged again.
const outageLogEvery = 10 * time.Second

type noRideThroughKey struct{}

// withoutRideThrough marks ctx so that commands under it fail at once, for
// Wait, which retries and logs by itself.
func withoutRideThrough(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRideThroughKey{}, true)
}

func (h *rideThrough) DialHook(next redis.DialHook) redis.DialHook { return next }

// setsUpConn reports whether cmd is one go-redis sends to set up a new
// connection (HELLO, AUTH, and the pipeline of SELECT, CLIENT SETINFO and
// the like, all through the client's hooks). They are not ridden through:
// they run on that one connection, and once it breaks (a Sentinel closes
// its clients when it promotes a replica) every retry fails on it again,
// until the budget ends. Failing at once lets the command that needed the
// connection ride through on a new one.
func setsUpConn(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "auth", "select", "client", "readonly", "readwrite":
		return true
	}
	return false
}

func (h *rideThrough) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "watch", "unwatch", "multi", "exec", "discard":
			return next(ctx, cmd)
		}
		if cmd.NoRetry() || setsUpConn(cmd) {
			return next(ctx, cmd)
		}
		return h.do(ctx, func() error {
			cmd.SetErr(nil)
			return next(ctx, cmd)
		})
	}
}

func (h *rideThrough) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if (len(cmds) > 0 && cmds[0].Name() == "multi") || slices.ContainsFunc(cmds, setsUpConn) {
			return next(ctx, cmds)
		}
		return h.do(ctx, func() error {
			for _, c := range cmds {
				c.SetErr(nil)
			}
			return next(ctx, cmds)
		})
	}
}

func (h *rideThrough) do(ctx context.Context, f func() error) error {
	if ctx.Value(noRideThroughKey{}) != nil {
		return f()
	}
	var start time.Time
	for attempt := 0; ; attempt++ {
		err := f()
		if !Transient(err) {
			if attempt > 0 && !silent(err) {
				h.up()
			}
			return err
		}
		now := time.Now()
		if start.IsZero() {
			start = now
		}
		if now.Sub(start) >= h.budget {
			return err
		}
		if h.down(now, err) {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			h.reload(rctx)
			cancel()
		}
		if sleep.For(ctx, Backoff(attempt)) != nil {
			return err
		}
	}
}

// down notes a failure at now, logs it once per outageLogEvery, and
// reports whether the caller should reload the topology.
func (h *rideThrough) down(now time.Time, err error) (reload bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since.IsZero() {
		h.since = now
	}
	if h.reload != nil && now.Sub(h.reloaded) >= reloadEvery {
		h.reloaded, reload = now, true
	}
	if now.Sub(h.logged) < outageLogEvery {
		return reload
	}
	h.logged = now
	h.log.Warn("Redis does not answer; retrying", "redis", h.target, "err", err,
		"down_for", now.Sub(h.since).Round(time.Millisecond), "gives_up_after", h.budget)
	return reload
}

func (h *rideThrough) up() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since.IsZero() {
		return
	}
	h.log.Info("Redis answers again", "redis", h.target, "down_for", time.Since(h.since).Round(time.Millisecond))
	h.since, h.logged = time.Time{}, time.Time{}
}

// Backoff returns the wait before retry attempt+1: exponential from 50ms to
// 2s, with jitter (between half and all of it) so that replicas that lost
// Redis together do not come back in step.
func Backoff(attempt int) time.Duration {
	d := 2 * time.Second
	if attempt < 6 {
		d = 50 * time.Millisecond << attempt
	}
	return d/2 + rand.N(d/2+1)
}

// rawIOHook reads and writes the client's plain TCP and Unix-socket
// connections through raw system calls (internal/rawio): a worker's Redis
// replies then do not wake the runtime's sysmon thread.
type rawIOHook struct{}

func (rawIOHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return rawio.Wrap(c), nil
	}
}

func (rawIOHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (rawIOHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
