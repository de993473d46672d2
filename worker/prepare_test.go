package worker_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/worker"
)

// abortReads counts the reads of a job's abort reason alone (HGET of the
// abort field), the read of a permit that found none fresh.
type abortReads struct{ n atomic.Int64 }

func (*abortReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (*abortReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *abortReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); strings.EqualFold(cmd.Name(), "hget") && len(a) == 3 && a[2] == "abort" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

// TestFirstCallReadsNoAbortReason: a chunk run reads the job's record, abort
// reason included, before its hold; its first permit does not read the
// reason again, a round trip between the permit and the request.
func TestFirstCallReadsNoAbortReason(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10}, false, 10)
	b.api.fn = func(int, []string) capapi.Result { return accepted }
	rdb := b.rdb.Client(t)
	h := &abortReads{}
	rdb.AddHook(h)
	w, err := worker.New(jobstore.New(rdb), b.api, b.lim, worker.Config{BatchSize: 10, OutDir: b.out,
		Logger: testLogger(t), Metrics: worker.NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	b.w = w
	b.mustRun(t, 0)
	b.wantAccepted(t, 0, 1)
	if n := h.n.Load(); n != 0 {
		t.Errorf("%d reads of the abort reason for one call, want none (the record read before the hold has it)", n)
	}
}
