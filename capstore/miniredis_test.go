package capstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capstore"
)

// capcheck run's embedded Redis is miniredis, whose Lua has no struct
// library: the scripts must not need it.
func TestEmbeddedRedis(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	s := capstore.New(rdb, capstore.Options{})
	ord, err := s.RegisterJob(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Await(ctx, "j", ord, []capstore.Awaited{{Number: 919876543210, Index: 3}}, t0); err != nil {
		t.Fatal(err)
	}
	res, err := s.Ingest(ctx, []capstore.Callback{cb(919876543210, capstore.Capable, t0.Add(time.Minute)),
		cb(919876543210, capstore.Capable, t0.Add(2*time.Minute))})
	if err != nil || res[0] != capstore.Stored || res[1] != capstore.Duplicate {
		t.Fatalf("Ingest = %v, %v", res, err)
	}
	recs, err := s.Lookup(ctx, []uint64{919876543210})
	if err != nil || recs[0].Capability != capstore.Capable || !recs[0].At.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Lookup = %+v, %v", recs, err)
	}
	if err := s.Release(ctx, ord, []uint64{919876543210}); err != nil {
		t.Fatal(err)
	}
	// It has no INFO replication: no replicas, so the receiver acknowledges
	// what the master has, as before.
	if rep, err := s.Replicas(ctx); err != nil || len(rep) != 1 || rep[""] != 0 {
		t.Fatalf("Replicas = %v, %v; want none", rep, err)
	}
}
