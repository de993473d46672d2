package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/worker"
)

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "process enqueued chunks: call the API under the fleet rate limit, write the output files",
		Description: "A long-running asynq server. Any number of replicas share one Redis, one rate\n" +
			"limit (--rate is for the whole fleet) and the jobs' state: scale by starting more.\n" +
			"It retries transient errors, bisects batches refused for an invalid number, pauses\n" +
			"the fleet on 429, stops a job on 401/403, and writes {out}/{job}/ when the job's last\n" +
			"chunk is done. SIGTERM or SIGINT drains: calls in flight finish and are recorded,\n" +
			"the rest goes back to the queue for other replicas, within --shutdown-timeout.\n" +
			"With --metrics-addr it serves Prometheus metrics on /metrics (docs/metrics.md)\n" +
			"and a health check on /healthz.",
		Flags:  slices.Concat(configs.SharedFlags(), configs.APIFlags(), configs.WorkerFlags()),
		Action: workerAction,
	}
}

func workerAction(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := loadConfig(c, configs.Needs{Credentials: true})
	if err != nil {
		return err
	}
	log := newLogger(cfg, c.App.ErrWriter)

	rdb, opt, err := connectRedis(c.Context, cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()

	reg := prometheus.NewRegistry()
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Listen first: a taken address is refused before any task is taken.
	var ln net.Listener
	if cfg.Worker.MetricsAddr != "" {
		if ln, err = net.Listen("tcp", cfg.Worker.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr %s: %w", cfg.Worker.MetricsAddr, err)
		}
	}
	w, stop, err := startWorker(c.Context, cfg, rdb, opt, jobstore.New(rdb), log, reg)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	if ln != nil {
		// Deferred: /metrics stays up while the worker drains.
		defer serveMetrics(ln, reg, rdb, w, log)()
		log.Info("serving /metrics and /healthz", "addr", ln.Addr().String())
	}

	<-c.Context.Done()
	log.Info("worker stopping: draining in-flight calls", "shutdown_timeout", cfg.Worker.ShutdownTimeout)
	stop()
	log.Info("worker stopped")
	return nil
}

// serveMetrics serves /metrics and /healthz on ln until the returned stop is
// called. /healthz answers 200 while Redis answers and the worker is not
// draining, 503 otherwise.
func serveMetrics(ln net.Listener, reg *prometheus.Registry, rdb redis.UniversalClient, w *worker.Worker, log *slog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-w.Stopping():
			http.Error(rw, "draining", http.StatusServiceUnavailable)
			return
		default:
		}
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			http.Error(rw, "redis: "+err.Error(), http.StatusServiceUnavailable)
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
