package main

import (
	"context"
	"log/slog"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/ratelimit"
	"github.com/capcheck/capcheck/worker"
)

// startWorker starts a worker of cfg on rdb: the fleet limiter, the API
// client and the asynq server. stop drains it (in-flight calls finish and are
// recorded) and closes the API client; calling it twice is harmless.
func startWorker(_ context.Context, cfg *configs.Config, rdb redis.UniversalClient, opt asynq.RedisConnOpt,
	store *jobstore.Store, log *slog.Logger, reg prometheus.Registerer) (w *worker.Worker, stop func(), err error) {
	lim, err := ratelimit.New(rdb, ratelimit.Config{Limit: ratelimit.PerSecond(cfg.API.Rate)})
	if err != nil {
		return nil, nil, usageErrorf("--rate: %v", err)
	}
	api, err := capapi.New(capapi.Config{
		BaseURL:           cfg.API.URL,
		SID:               cfg.API.SID,
		APIKey:            cfg.API.Key.Reveal(), // the one use of the key: the client's header
		CallbackProfileID: cfg.API.CallbackProfileID,
		Timeout:           cfg.API.Timeout,
		MaxConns:          cfg.Worker.Concurrency,
		WireE164:          cfg.API.WireFormat == configs.WireFormatE164,
	})
	if err != nil {
		return nil, nil, usageErrorf("%v", err)
	}
	w, err = worker.New(store, opt, api, lim, worker.Config{
		Concurrency:     cfg.Worker.Concurrency,
		BatchSize:       cfg.API.BatchSize,
		MaxAttempts:     cfg.API.MaxAttempts,
		ShutdownTimeout: cfg.Worker.ShutdownTimeout,
		OutDir:          cfg.Out,
		Logger:          log,
		Metrics:         worker.NewMetrics(reg),
	})
	if err != nil {
		api.CloseIdleConnections()
		return nil, nil, usageErrorf("%v", err)
	}
	if err := w.Start(); err != nil {
		api.CloseIdleConnections()
		return nil, nil, err
	}
	log.Info("worker started",
		"concurrency", cfg.Worker.Concurrency,
		"rate", cfg.API.Rate,
		"batch_size", cfg.API.BatchSize,
		"max_attempts", cfg.API.MaxAttempts,
		"api_url", cfg.API.URL,
		"out", cfg.Out,
	)
	stopped := false
	return w, func() {
		if stopped {
			return
		}
		stopped = true
		w.Shutdown()
		api.CloseIdleConnections()
	}, nil
}
