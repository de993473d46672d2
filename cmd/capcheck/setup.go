package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/internal/redact"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/ratelimit"
	"github.com/capcheck/capcheck/worker"
)

// startWorker starts a worker of cfg on rdb: the fleet limiter, the API
// client, the asynq server and, with --metrics-addr, /metrics and /healthz.
// stop drains it (in-flight calls finish and are recorded; /metrics stays up
// meanwhile), then closes the API client and the metrics server; calling it
// twice is harmless. With noFiles the worker writes no output files (wait,
// run and export write them where they run).
func startWorker(cfg *configs.Config, rdb redis.UniversalClient, store *jobstore.Store,
	log *slog.Logger, noFiles bool) (w *worker.Worker, stop func(), err error) {
	reg := prometheus.NewRegistry()
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Listen first: a taken address is refused before any task is taken.
	var ln net.Listener
	if cfg.Worker.MetricsAddr != "" {
		if ln, err = net.Listen("tcp", cfg.Worker.MetricsAddr); err != nil {
			return nil, nil, fmt.Errorf("--metrics-addr %s: %w", cfg.Worker.MetricsAddr, err)
		}
		defer func() {
			if err != nil {
				ln.Close()
			}
		}()
	}
	store.SetFleetLimit(cfg.API.Rate) // drawn in the jobs' reports
	lim, err := ratelimit.New(rdb, ratelimit.Config{Limit: ratelimit.PerSecond(cfg.API.Rate), Logger: log})
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
	w, err = worker.New(store, api, lim, worker.Config{
		Concurrency:     cfg.Worker.Concurrency,
		BatchSize:       cfg.API.BatchSize,
		MaxAttempts:     cfg.API.MaxAttempts,
		ShutdownTimeout: cfg.Worker.ShutdownTimeout,
		Retention:       cfg.Worker.Retention,
		ForgetAfter:     cfg.Memory.ForgetAfter,
		OutDir:          cfg.Out,
		NoFiles:         noFiles,
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
	if cfg.Worker.ShutdownTimeout <= cfg.API.Timeout {
		log.Warn("--shutdown-timeout is not longer than --timeout: a call in flight at SIGTERM may be abandoned and sent again",
			"shutdown_timeout", cfg.Worker.ShutdownTimeout, "timeout", cfg.API.Timeout)
	}
	stopMetrics := func() {}
	if ln != nil {
		stopMetrics = serveMetrics(ln, reg, rdb, w, log)
		log.Info("serving /metrics and /healthz", "addr", ln.Addr().String())
	}
	log.Info("worker started",
		"concurrency", cfg.Worker.Concurrency,
		"rate", cfg.API.Rate,
		"batch_size", cfg.API.BatchSize,
		"max_attempts", cfg.API.MaxAttempts,
		"api_url", redact.URL(cfg.API.URL),
		"out", cfg.Out,
		"writes_files", !noFiles,
	)
	stopped := false
	return w, func() {
		if stopped {
			return
		}
		stopped = true
		w.Shutdown()
		api.CloseIdleConnections()
		st := lim.Stats()
		log.Info("rate limiter at shutdown", "permits", st.Permits, "voided_late", st.VoidedLate,
			"voided_paused", st.VoidedPaused, "voided_at_send", st.VoidedAtSend)
		stopMetrics()
	}, nil
}

// serveMetrics serves /metrics and /healthz on ln until the returned stop is
// called. /healthz answers 200 while Redis answers and the worker is not
// draining, 503 otherwise.
func serveMetrics(ln net.Listener, reg *prometheus.Registry, rdb redis.UniversalClient, w *worker.Worker, log *slog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-w.Draining():
			http.Error(rw, "draining", http.StatusServiceUnavailable)
			return
		default:
		}
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			// The error names addresses and more: for the log, not for
			// whoever can reach the port (the worker warns of it too).
			log.Debug("/healthz: Redis does not answer", "err", err)
			http.Error(rw, "redis unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = rw.Write([]byte("ok\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}
