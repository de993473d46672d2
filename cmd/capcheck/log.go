package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/configs"
)

// newLogger returns the logger of cfg.LogFormat and cfg.LogLevel, writing to
// w (standard error). go-redis's own messages go through it too, so that
// --log-format json stays JSON.
func newLogger(cfg *configs.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var log *slog.Logger
	if cfg.LogFormat == configs.LogFormatJSON {
		log = slog.New(slog.NewJSONHandler(w, opts))
	} else {
		log = slog.New(slog.NewTextHandler(w, opts))
	}
	redis.SetLogger(redisLogger{log.With("component", "go-redis")})
	return log
}

// redisLogger is go-redis's logger on slog: it logs connection trouble,
// at warning level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}
