package worker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"
)

// asynqLogger passes asynq's logs to slog, tagged component=asynq.
type asynqLogger struct{ l *slog.Logger }

var _ asynq.Logger = asynqLogger{}

func newAsynqLogger(l *slog.Logger) asynqLogger { return asynqLogger{l.With("component", "asynq")} }

func (a asynqLogger) Debug(args ...any) { a.log(slog.LevelDebug, args) }
func (a asynqLogger) Info(args ...any)  { a.log(slog.LevelInfo, args) }
func (a asynqLogger) Warn(args ...any)  { a.log(slog.LevelWarn, args) }
func (a asynqLogger) Error(args ...any) { a.log(slog.LevelError, args) }

// Fatal logs at error level and does not exit: only main may end the
// process. asynq's server never calls it.
func (a asynqLogger) Fatal(args ...any) { a.log(slog.LevelError, args) }

func (a asynqLogger) log(level slog.Level, args []any) {
	ctx := context.Background()
	if a.l.Enabled(ctx, level) {
		a.l.Log(ctx, level, fmt.Sprint(args...))
	}
}

// asynqLevel is the asynq log level matching l's, so that asynq does not
// format debug lines slog would drop.
func asynqLevel(l *slog.Logger) asynq.LogLevel {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		return asynq.DebugLevel
	}
	return asynq.InfoLevel
}
