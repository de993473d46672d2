package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

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
	reg := newRegistry()
	// Listen first: a taken address is refused before any task is taken.
	ln, err := listenMetrics(cfg.Worker.MetricsAddr)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil && ln != nil {
			ln.Close()
		}
	}()
	store.SetFleetLimit(cfg.API.Rate) // drawn in the jobs' reports
	lim, api, err := newAPIClient(cfg, rdb, log)
	if err != nil {
		return nil, nil, err
	}
	if w, err = newWorker(cfg, store, api, lim, worker.NewMetrics(reg), noFiles, log); err != nil {
		api.CloseIdleConnections()
		return nil, nil, err
	}
	if cfg.Worker.ShutdownTimeout <= cfg.API.Timeout {
		log.Warn("--shutdown-timeout is not longer than --timeout: a call in flight at SIGTERM may be abandoned and sent again",
			"shutdown_timeout", cfg.Worker.ShutdownTimeout, "timeout", cfg.API.Timeout)
	}
	stopMetrics := func() {}
	if ln != nil {
		stopMetrics = serveMetrics(ln, reg, workerHealthz(rdb, w, log), log)
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
			"voided_paused", st.VoidedPaused, "voided_at_send", st.VoidedAtSend, "round_trips", st.RoundTrips)
		stopMetrics()
	}, nil
}

// newAPIClient returns the fleet's rate limiter on rdb and the API client of
// cfg.
func newAPIClient(cfg *configs.Config, rdb redis.UniversalClient, log *slog.Logger) (*ratelimit.Limiter, *capapi.Client, error) {
	lim, err := ratelimit.New(rdb, ratelimit.Config{Limit: ratelimit.PerSecond(cfg.API.Rate), Logger: log})
	if err != nil {
		return nil, nil, usageErrorf("--rate: %v", err)
	}
	wc := worker.Config{Concurrency: cfg.Worker.Concurrency}.WithDefaults()
	api, err := capapi.New(capapi.Config{
		BaseURL:           cfg.API.URL,
		SID:               cfg.API.SID,
		APIKey:            cfg.API.Key.Reveal(), // the one use of the key: the client's header
		CallbackProfileID: cfg.API.CallbackProfileID,
		Timeout:           cfg.API.Timeout,
		MaxConns:          wc.CallsInFlight,
		WarmConns:         wc.Concurrency, // more only while the worker's calls outrun the limiter
		WireE164:          cfg.API.WireFormat == configs.WireFormatE164,
	})
	if err != nil {
		return nil, nil, usageErrorf("%v", err)
	}
	return lim, api, nil
}

// newWorker returns a started worker of cfg.
func newWorker(cfg *configs.Config, store *jobstore.Store, api *capapi.Client, lim *ratelimit.Limiter,
	m *worker.Metrics, noFiles bool, log *slog.Logger) (*worker.Worker, error) {
	w, err := worker.New(store, api, lim, worker.Config{
		Concurrency:     cfg.Worker.Concurrency,
		BatchSize:       cfg.API.BatchSize,
		MaxAttempts:     cfg.API.MaxAttempts,
		ShutdownTimeout: cfg.Worker.ShutdownTimeout,
		Retention:       cfg.Worker.Retention,
		ForgetAfter:     cfg.Memory.ForgetAfter,
		OutDir:          cfg.Out,
		NoFiles:         noFiles,
		Logger:          log,
		Metrics:         m,
	})
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	if err := w.Start(); err != nil {
		return nil, err
	}
	return w, nil
}

// workerHealthz answers 200 while Redis answers and the worker w is not
// draining, 503 otherwise.
func workerHealthz(rdb redis.UniversalClient, w *worker.Worker, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
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
}
