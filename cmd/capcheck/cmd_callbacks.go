package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/callbacks"
	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/configs"
)

func callbacksCommand() *cli.Command {
	return &cli.Command{
		Name:  "callbacks",
		Usage: "receive the provider's capability callbacks and record them in Redis",
		Description: "An HTTP server for the URL of the account's callback profile: POST, PUT or GET\n" +
			"at /callback, a JSON object, a JSON array of objects, a form body or the query\n" +
			"string, with the number and status at --callback-number-field and\n" +
			"--callback-status-field. A callback is answered 200 only once it is recorded in\n" +
			"Redis; a wrong or missing token gets 401, a bad body 400 or 413, and a flood 503\n" +
			"with Retry-After. Any number of replicas share one Redis behind a load balancer.\n" +
			"GET /healthz checks Redis; --metrics-addr serves Prometheus /metrics\n" +
			"(docs/metrics.md). SIGTERM or SIGINT stops it gracefully: requests in flight are\n" +
			"written and answered. docs/operations.md shows the callback profile to set up.",
		Flags: slices.Concat(configs.SharedFlags(), configs.CallbackFlags(), configs.DefaultRegionFlag(),
			configs.ServiceFlags()),
		Action: sessionAction(configs.Needs{CallbackListen: true}, callbacksAction),
	}
}

func callbacksAction(c *cli.Context, s *session) error {
	reg := newRegistry()
	serve, _, err := startReceiver(s.cfg, s.rdb, s.log, reg, nil)
	if err != nil {
		return err
	}
	ln, err := listenMetrics(s.cfg.Worker.MetricsAddr)
	if err != nil {
		return err
	}
	if ln != nil {
		defer serveMetrics(ln, reg, nil, s.log)()
		s.log.Info("serving /metrics", "addr", ln.Addr().String())
	}
	err = serve(c.Context)
	s.log.Info("callback receiver stopped")
	return err
}

// startReceiver listens on --callback-listen and returns the function that
// serves callbacks until its context is done, then shuts down gracefully
// (within --shutdown-timeout). Listening first makes a taken address or an
// unreadable certificate an error before anything runs.
func startReceiver(cfg *configs.Config, rdb redis.UniversalClient, log *slog.Logger,
	reg prometheus.Registerer, onStored func([]capstore.Callback) error) (serve func(context.Context) error, addr string, err error) {
	cb := cfg.Callback
	tlsFiles := callbacks.TLS{CertFile: cb.TLSCert, KeyFile: cb.TLSKey}
	if cb.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(cb.TLSCert, cb.TLSKey); err != nil {
			return nil, "", usageErrorf("--callback-tls-cert %s / --callback-tls-key %s: %v", cb.TLSCert, cb.TLSKey, err)
		}
	}
	recv, err := callbacks.New(capstore.New(rdb, capstore.Options{}), callbacks.Config{
		Token:         cb.Token.Reveal(), // compared, never logged
		Header:        cb.Header,
		NumberField:   cb.NumberField,
		StatusField:   cb.StatusField,
		Capable:       cb.Capable,
		NotCapable:    cb.NotCapable,
		Allow:         cb.AllowPrefixes(),
		DefaultRegion: cfg.Enqueue.DefaultRegion,
		Logger:        log,
		Metrics:       callbacks.NewMetrics(reg),
		OnStored:      onStored,
	})
	if err != nil {
		return nil, "", usageErrorf("%v", err) // configs.Validate checks the same: a backstop
	}
	ln, err := net.Listen("tcp", cb.Listen)
	if err != nil {
		return nil, "", fmt.Errorf("--callback-listen %s: %w", cb.Listen, err)
	}
	auth := "token in " + cb.Header
	if cb.Token.IsZero() {
		auth = "none (loopback only)"
	}
	log.Info("receiving callbacks", "addr", ln.Addr().String(), "path", callbacks.Path,
		"tls", cb.TLSCert != "", "auth", auth, "number_field", cb.NumberField, "status_field", cb.StatusField)
	return func(ctx context.Context) error {
		return recv.Serve(ctx, ln, tlsFiles, cfg.Worker.ShutdownTimeout)
	}, ln.Addr().String(), nil
}

// runReceiver starts the callback receiver in this process (run
// --callback-listen, run --demo) and returns its address and the function
// that stops it, after the callbacks in flight are written. On the
// embedded Redis the callbacks are journaled before they are acknowledged.
func runReceiver(ctx context.Context, cfg *configs.Config, r *runRedis, log *slog.Logger) (addr string, stop func(), err error) {
	var onStored func([]capstore.Callback) error
	if r.emb != nil {
		onStored = r.emb.JournalCallbacks
	}
	serve, addr, err := startReceiver(cfg, r.rdb, log, nil, onStored)
	if err != nil {
		return "", nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := serve(sctx); err != nil {
			log.Error("callback receiver stopped", "err", err)
		}
	}()
	return addr, func() { cancel(); <-done }, nil
}
