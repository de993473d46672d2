package redisconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/sleep"
)

// StartupWaitDefault is how long a command waits at start for a Redis that
// does not answer yet: long enough for Redis (or its failover) to come up
// when everything starts at once, short enough that a wrong --redis fails a
// cron run rather than hanging it.
const StartupWaitDefault = 5 * time.Minute

// pingTimeout bounds one readiness check.
const pingTimeout = 2 * time.Second

// ErrConfig matches (errors.Is) a [URL.Wait] error that waiting cannot
// fix: Redis answered and refused the URL's credentials, the user's
// permissions or its database number. Its message says what to fix.
var ErrConfig = errors.New("Redis refuses the connection's settings")

// configError is an ErrConfig with its message and Redis's answer.
type configError struct {
	msg string
	err error
}

func (e *configError) Error() string   { return e.msg }
func (e *configError) Unwrap() []error { return []error{ErrConfig, e.err} }

// misconfigured returns an ErrConfig when err is Redis's answer to settings
// that are wrong (no retry makes them right), else nil. The answers name no
// secret; the URL is shown redacted.
func (r *URL) misconfigured(err error) error {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return nil
	}
	msg := rerr.Error()
	var fix string
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "ERR invalid password"):
		fix = "refused the user name or password: fix the password in --redis (redis://:PASSWORD@HOST:PORT/DB, or redis://USER:PASSWORD@... for an ACL user)"
	case strings.HasPrefix(msg, "NOAUTH"):
		fix = "needs a password: give it in --redis (redis://:PASSWORD@HOST:PORT/DB, or redis://USER:PASSWORD@... for an ACL user)"
	case strings.HasPrefix(msg, "NOPERM"):
		fix = "does not let the user of --redis run what capcheck needs: grant it in the user's ACL, or use another user"
	case strings.Contains(msg, "DB index is out of range"):
		fix = "has no database of the number in --redis: use one below the server's 'databases' setting (16 by default)"
	case strings.Contains(msg, "without any password configured"), strings.Contains(msg, "but no password is set"):
		fix = "has no password set, but --redis gives one: remove it from --redis, or set one on the server"
	default:
		return nil
	}
	return &configError{msg: fmt.Sprintf("Redis at %s %s (Redis said: %v)", r.redacted, fix, err), err: err}
}

// WaitOptions tune [URL.Wait].
type WaitOptions struct {
	// Logger gets what Wait waits for, once at first and every 10s after.
	// Defaults to a logger that discards.
	Logger *slog.Logger

	// Max is how long Wait waits before it gives up: 0 checks once, a
	// negative Max waits until ctx ends. Commands use StartupWaitDefault
	// unless told otherwise (--redis-wait).
	Max time.Duration

	// backoff, when set, replaces Backoff (tests).
	backoff func(attempt int) time.Duration
}

// Wait blocks until the Redis of rdb (a client of [URL.NewClient]) is ready:
// one server or the Sentinel master answers PING; every master of a cluster
// answers and the cluster says its state is ok. Until then it retries with
// backoff and logs what it waits for. It returns nil once ready, ctx's error
// when ctx ends, or an error naming the last problem after o.Max. An answer
// that says the settings are wrong (a bad password, no permission, no such
// database) is not waited out: it returns an ErrConfig at once.
func (r *URL) Wait(ctx context.Context, rdb redis.UniversalClient, o WaitOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	backoff := o.backoff
	if backoff == nil {
		backoff = Backoff
	}
	start := time.Now()
	var logged time.Time
	for attempt := 0; ; attempt++ {
		err := r.ready(ctx, rdb)
		if err == nil {
			if attempt > 0 {
				log.Info("Redis answers", "redis", r.redacted, "waited", time.Since(start).Round(time.Millisecond))
			}
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if cerr := r.misconfigured(err); cerr != nil {
			return cerr
		}
		waited := time.Since(start)
		if o.Max == 0 {
			return fmt.Errorf("Redis at %s does not answer: %w", r.redacted, err)
		}
		if o.Max > 0 && waited >= o.Max {
			return fmt.Errorf("Redis at %s did not answer within %s: %w", r.redacted, o.Max, err)
		}
		if time.Since(logged) >= outageLogEvery {
			logged = time.Now()
			log.Warn("waiting for Redis", "redis", r.redacted, "topology", r.kind.String(), "err", err,
				"waited", waited.Round(time.Millisecond))
		}
		if sleep.For(ctx, backoff(attempt)) != nil {
			return context.Cause(ctx)
		}
	}
}

// ready checks once, without riding through, whether Redis serves.
func (r *URL) ready(ctx context.Context, rdb redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(withoutRideThrough(ctx), pingTimeout)
	defer cancel()
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		if err := rdb.Ping(ctx).Err(); err != nil {
			return r.explain(err)
		}
		return nil
	}
	info, err := cc.ClusterInfo(ctx).Result()
	if err != nil {
		return r.explain(err)
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return errors.New("the cluster's state is not ok (slots without a live master)")
	}
	return cc.ForEachShard(ctx, func(ctx context.Context, shard *redis.Client) error {
		if err := shard.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("node %s: %w", shard.Options().Addr, err)
		}
		return nil
	})
}

// explain adds to err what it means for the URL's topology.
func (r *URL) explain(err error) error {
	if r.kind == Sentinel {
		return fmt.Errorf("master %q through sentinels %s: %w", r.failover.MasterName,
			strings.Join(r.failover.SentinelAddrs, ","), err)
	}
	return err
}
