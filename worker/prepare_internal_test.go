package worker

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redistest"
)

// dials counts a client's new connections.
type dials struct{ n atomic.Int64 }

func (d *dials) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.n.Add(1)
		return next(ctx, network, addr)
	}
}
func (*dials) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (*dials) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestOpenRedisConns: the connections opened at start serve a chunk's
// first command and first pipeline (go-redis keeps a pool apart for
// pipelines) without a dial.
func TestOpenRedisConns(t *testing.T) {
	t.Parallel()
	rdb := redistest.Shared(t).Client(t)
	d := &dials{}
	rdb.AddHook(d)
	ctx := context.Background()
	if err := openRedisConns(ctx, rdb, 4); err != nil {
		t.Fatal(err)
	}
	if got := rdb.PoolStats().TotalConns; got != 4 {
		t.Errorf("%d connections in the pool, want 4", got)
	}
	opened := d.n.Load()
	if opened < 5 {
		t.Errorf("%d connections opened, want 4 and at least one for pipelines", opened)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { return p.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	if n := d.n.Load() - opened; n != 0 {
		t.Errorf("%d dials for a command and a pipeline after openRedisConns, want none", n)
	}
}
