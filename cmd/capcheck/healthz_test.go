package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/worker"
)

// failingRedis answers every command with err.
type failingRedis struct{ err error }

func (failingRedis) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f failingRedis) ProcessHook(redis.ProcessHook) redis.ProcessHook {
	return func(_ context.Context, cmd redis.Cmder) error { cmd.SetErr(f.err); return f.err }
}
func (f failingRedis) ProcessPipelineHook(redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(context.Context, []redis.Cmder) error { return f.err }
}

type noAPI struct{}

func (noAPI) Check(context.Context, []string) capapi.Result { return capapi.Result{} }

type noLimiter struct{}

func (noLimiter) Wait(context.Context) (time.Duration, error) { return 0, nil }
func (noLimiter) Pause(context.Context, time.Duration) error  { return nil }

// /healthz says Redis does not answer, without the error's text (addresses,
// and whatever else a driver puts there) to whoever can reach the port.
func TestHealthzHidesRedisErrors(t *testing.T) {
	t.Parallel()
	// A Redis that fails every command without dialing: a real dial failure
	// would log through go-redis's global logger, which other in-process
	// tests of this package point at their own buffers.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { rdb.Close() })
	rdb.AddHook(failingRedis{errors.New("dial tcp 10.1.2.3:6379: i/o timeout (secret-detail)")})
	w, err := worker.New(jobstore.New(rdb), noAPI{}, noLimiter{}, worker.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	stop := serveMetrics(ln, prometheus.NewRegistry(), workerHealthz(rdb, w, log), log)
	t.Cleanup(stop)

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || strings.TrimSpace(string(body)) != "redis unavailable" ||
		strings.Contains(string(body), "secret-detail") {
		t.Errorf("/healthz with Redis down: %d %q; want 503 \"redis unavailable\"", resp.StatusCode, body)
	}
}
