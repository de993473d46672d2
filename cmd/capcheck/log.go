package main

import (
	"io"
	"log/slog"

	"github.com/capcheck/capcheck/configs"
)

// newLogger returns the logger of cfg.LogFormat and cfg.LogLevel, writing to
// w (standard error).
func newLogger(cfg *configs.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == configs.LogFormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
