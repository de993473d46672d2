package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/internal/redact"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/redisconn"
)

// connectRedis opens cfg's Redis (any topology: one server, Sentinel,
// Cluster), one client for the job store, the queue and the rate limit, and
// waits up to --redis-wait until it answers, logging what it waits for: a
// component may start before Redis or during a failover. The client rides
// through later failovers.
func connectRedis(ctx context.Context, cfg *configs.Config, log *slog.Logger) (redis.UniversalClient, error) {
	u, err := redisconn.Parse(cfg.Redis)
	if err != nil {
		// Validate checks the URL; this is a backstop.
		return nil, usageErrorf("--redis %s: %v", redact.URL(cfg.Redis), err)
	}
	rdb := u.NewClient(redisconn.Options{Logger: log})
	if err := u.Wait(ctx, rdb, redisconn.WaitOptions{Logger: log, Max: cfg.RedisWait}); err != nil {
		rdb.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("stopped waiting for Redis at %s: %w", u, err)
		}
		if errors.Is(err, redisconn.ErrConfig) {
			return nil, usageErrorf("%v", err) // the message says what to fix
		}
		return nil, fmt.Errorf("%w (start it, or point --redis, CAPCHECK_REDIS or redis: in the config file at it; --redis-wait says how long to wait for it)", err)
	}
	return rdb, nil
}

// replicaWait bounds the wait for a replica after the writes that must
// outlive a failover (see jobstore.WithReplicaWait).
const replicaWait = time.Second

// storeOptions are the job store's options for cfg's Redis: with replicas
// (Sentinel, Cluster), the writes a failover must not lose wait for one.
func storeOptions(cfg *configs.Config) []jobstore.Option {
	if u, err := redisconn.Parse(cfg.Redis); err == nil && u.Kind() != redisconn.Single {
		return []jobstore.Option{jobstore.WithReplicaWait(replicaWait)}
	}
	return nil
}

// jobArg returns the JOB argument of a command that takes exactly one.
func jobArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", usageErrorf("%s needs one JOB argument (the ID enqueue printed), got %d arguments",
			c.Command.HelpName, c.NArg())
	}
	id := c.Args().First()
	if s := shownArg(c, id); !strings.HasPrefix(s, `"`) {
		return "", usageErrorf("%s needs a JOB argument (the ID enqueue printed), got one %s", c.Command.HelpName, s)
	}
	if err := configs.CheckJobID(id); err != nil {
		return "", err
	}
	return id, nil
}

// isTerminal reports whether w is a terminal, for progress display.
func isTerminal(w any) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// loadConfig loads the command's configuration and checks it for what the
// command needs.
func loadConfig(c *cli.Context, n configs.Needs) (*configs.Config, error) {
	cfg, err := configs.Load(c)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(n); err != nil {
		return nil, err
	}
	log := newLogger(cfg, c.App.ErrWriter)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	return cfg, nil
}

// session is what a command working on Redis starts from.
type session struct {
	cfg   *configs.Config
	log   *slog.Logger
	rdb   redis.UniversalClient
	store *jobstore.Store
}

// openSession loads the command's configuration (checked for n) and
// connects to its Redis. Close it when done.
func openSession(c *cli.Context, n configs.Needs) (*session, error) {
	cfg, err := loadConfig(c, n)
	if err != nil {
		return nil, err
	}
	return connectSession(c, cfg)
}

// connectSession connects to the Redis of a loaded configuration.
func connectSession(c *cli.Context, cfg *configs.Config) (*session, error) {
	log := newLogger(cfg, c.App.ErrWriter)
	rdb, err := connectRedis(c.Context, cfg, log)
	if err != nil {
		return nil, err
	}
	return &session{cfg: cfg, log: log, rdb: rdb, store: jobstore.New(rdb, storeOptions(cfg)...)}, nil
}

func (s *session) Close() { s.rdb.Close() }

// sessionAction is the action of a command that takes no argument and
// works on Redis: the session opens (configuration checked for n), act runs
// on it, the session closes.
func sessionAction(n configs.Needs, act func(*cli.Context, *session) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := noArgs(c); err != nil {
			return err
		}
		return inSession(c, n, func(s *session) error { return act(c, s) })
	}
}

// jobCommand completes c as a command on the job its one argument names:
// the shared flags besides c's own, and act run on a session that needs no
// credentials.
func jobCommand(c cli.Command, act func(c *cli.Context, s *session, id string) error) *cli.Command {
	c.ArgsUsage = "JOB"
	c.Flags = slices.Concat(configs.SharedFlags(), c.Flags)
	c.Action = jobAction(configs.Needs{}, act)
	return &c
}

// jobAction is the action of a command whose one argument is a JOB, as
// sessionAction.
func jobAction(n configs.Needs, act func(c *cli.Context, s *session, id string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		id, err := jobArg(c)
		if err != nil {
			return err
		}
		return inSession(c, n, func(s *session) error { return act(c, s, id) })
	}
}

// inSession runs act on a session opened for n, then closes it.
func inSession(c *cli.Context, n configs.Needs, act func(*session) error) error {
	s, err := openSession(c, n)
	if err != nil {
		return err
	}
	defer s.Close()
	return act(s)
}
