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

// ErrConfig matches (errors.Is) a [URL.Wait] error that waiting did not
// fix: Redis answered, for the grace, and refused the URL's credentials, the
// user's permissions or its database number. Its message says what to fix.
var ErrConfig = errors.New("Redis refuses the connection's settings")

// configError is an ErrConfig with its message and Redis's answer.
type configError struct {
	msg string
	err error
}

func (e *configError) Error() string   { return e.msg }
func (e *configError) Unwrap() []error { return []error{ErrConfig, e.err} }

// ConfigGraceDefault is how long [URL.Wait] waits out an answer that says
// the settings are wrong before it returns an ErrConfig: such an answer can
// pass (a password rotated in the pods before in Redis, an ACL user that a
// hook creates after Redis starts).
const ConfigGraceDefault = 30 * time.Second

// misconfigured returns an ErrConfig when err is Redis's answer to settings
// that are wrong, else nil. The answers name no secret; the URL is shown
// redacted.
func (r *URL) misconfigured(err error) error {
	rerr, sentinels := configAnswer(err, false)
	if rerr == nil {
		return nil
	}
	node := "Redis"
	if r.kind == Sentinel {
		node = "The Redis master"
		if sentinels {
			node = "The sentinels"
		}
	}
	fix := configFix(rerr.Error(), sentinels)
	where := " at " + r.redacted
	if r.kind == Sentinel {
		where = fmt.Sprintf(" of %s", r.redacted)
	}
	return &configError{msg: fmt.Sprintf("%s%s %s (Redis said: %v)", node, where, fix, err), err: err}
}

// configAnswer returns the Redis answer in err that says the settings are
// wrong, if any, and whether it came from the sentinels. go-redis joins
// every sentinel's error when none answers: that is a configuration answer
// only when each sentinel's is, since sentinels that are merely restarting
// do not make one misconfigured sentinel a reason to stop.
func configAnswer(err error, sentinels bool) (redis.Error, bool) {
	switch e := err.(type) {
	case nil:
		return nil, false
	case redis.Error:
		if configFix(e.Error(), false) == "" {
			return nil, false
		}
		return e, sentinels
	case interface{ Unwrap() []error }:
		var first redis.Error
		for _, err := range e.Unwrap() {
			rerr, _ := configAnswer(err, true)
			if rerr == nil {
				return nil, false
			}
			if first == nil {
				first = rerr
			}
		}
		return first, first != nil
	case interface{ Unwrap() error }:
		return configAnswer(e.Unwrap(), sentinels)
	}
	return nil, false
}

// configFix says what to fix for a Redis answer that says the settings
// are wrong ("" for any other answer), from the sentinels or not.
func configFix(msg string, sentinels bool) string {
	// verb agrees with the node: the sentinels are several.
	verb := func(one, many string) string {
		if sentinels {
			return many
		}
		return one
	}
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "ERR invalid password"):
		return "refused the user name or password: fix the password in --redis (redis://:PASSWORD@HOST:PORT/DB, or redis://USER:PASSWORD@... for an ACL user)"
	case strings.HasPrefix(msg, "NOAUTH"):
		return verb("needs", "need") + " a password: give it in --redis (redis://:PASSWORD@HOST:PORT/DB, or redis://USER:PASSWORD@... for an ACL user)"
	case strings.HasPrefix(msg, "NOPERM"):
		return verb("does", "do") + " not let the user of --redis run what capcheck needs: grant it in the user's ACL, or use another user"
	case strings.Contains(msg, "DB index is out of range"):
		return "has no database of the number in --redis: use one below the server's 'databases' setting (16 by default)"
	case strings.Contains(msg, "without any password configured"), strings.Contains(msg, "but no password is set"):
		if sentinels {
			// The URL's password goes to the sentinels and to the master.
			return "have no password set, but --redis gives one (capcheck sends it to the sentinels too): set the master's password on the sentinels as well (requirepass in sentinel.conf), or remove it from --redis if the master has none"
		}
		return "has no password set, but --redis gives one: remove it from --redis, or set one on the server"
	}
	return ""
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

	// configGrace, when set, replaces ConfigGraceDefault (tests).
	configGrace time.Duration
}

// Wait blocks until the Redis of rdb (a client of [URL.NewClient]) is ready:
// one server or the Sentinel master answers PING; every master of a cluster
// answers and the cluster says its state is ok. Until then it retries with
// backoff and logs what it waits for. It returns nil once ready, ctx's error
// when ctx ends, or an error naming the last problem after o.Max. An answer
// that says the settings are wrong (a bad password, no permission, no such
// database) is waited out for ConfigGraceDefault at most (o.Max if shorter),
// in case the settings are being changed; if it lasts, or is the last answer
// after o.Max, Wait returns an ErrConfig.
func (r *URL) Wait(ctx context.Context, rdb redis.UniversalClient, o WaitOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	backoff := o.backoff
	if backoff == nil {
		backoff = Backoff
	}
	grace := o.configGrace
	if grace == 0 {
		grace = ConfigGraceDefault
	}
	if o.Max >= 0 {
		grace = min(grace, o.Max)
	}
	start := time.Now()
	var logged time.Time
	var refusedSince time.Time // since when every answer said the settings are wrong
	for attempt := 0; ; attempt++ {
		tried := time.Now()
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
		cerr := r.misconfigured(err)
		switch {
		case cerr == nil:
			refusedSince = time.Time{}
		case refusedSince.IsZero():
			refusedSince = tried
			logged = time.Time{} // say at once that this is no outage
		}
		waited := time.Since(start)
		if cerr != nil && (time.Since(refusedSince) >= grace || o.Max >= 0 && waited >= o.Max) {
			return cerr
		}
		if o.Max == 0 {
			return fmt.Errorf("Redis at %s does not answer: %w", r.redacted, err)
		}
		if o.Max > 0 && waited >= o.Max {
			return fmt.Errorf("Redis at %s did not answer within %s: %w", r.redacted, o.Max, err)
		}
		if time.Since(logged) >= outageLogEvery {
			logged = time.Now()
			if cerr != nil {
				log.Warn("Redis refuses the settings in --redis; waiting in case they are being changed",
					"redis", r.redacted, "err", cerr, "waited", waited.Round(time.Millisecond), "grace", grace)
			} else {
				log.Warn("waiting for Redis", "redis", r.redacted, "topology", r.kind.String(), "err", err,
					"waited", waited.Round(time.Millisecond))
			}
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
