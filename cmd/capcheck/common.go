package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/jobstore"
)

// connectTimeout bounds the start-up check that Redis answers.
const connectTimeout = 5 * time.Second

// connectRedis opens the Redis of url (one client for the job store, the
// queue and the rate limit) and checks that it answers.
func connectRedis(ctx context.Context, url string) (redis.UniversalClient, error) {
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		// Validate checks the URL; this is a backstop.
		return nil, usageErrorf("--redis %s: %v", configs.RedactURL(url), err)
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, usageErrorf("--redis %s: unsupported Redis URL", configs.RedactURL(url))
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %w (start it, or point --redis, CAPCHECK_REDIS or redis: in the config file at it)",
			configs.RedactURL(url), err)
	}
	return rdb, nil
}

// jobArg returns the JOB argument of a command that takes exactly one.
func jobArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", usageErrorf("%s needs one JOB argument (the ID enqueue printed), got %d arguments",
			c.Command.HelpName, c.NArg())
	}
	id := c.Args().First()
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
	log := newLogger(cfg, c.App.ErrWriter)
	rdb, err := connectRedis(c.Context, cfg.Redis)
	if err != nil {
		return nil, err
	}
	return &session{cfg: cfg, log: log, rdb: rdb, store: jobstore.New(rdb)}, nil
}

func (s *session) Close() { s.rdb.Close() }
