package capstore

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/capcheck/capcheck/internal/redistest"
)

// TestIngestReplicatedCluster: on a Cluster, a batch is confirmed by a
// replica of each master it writes to. With one master's replica frozen, a
// batch with a number on that master fails with ErrNotReplicated, while
// one on the other masters alone succeeds; thawed, the failed batch
// succeeds when ingested again.
func TestIngestReplicatedCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	cc := c.Client(t)
	s := New(cc, Options{Prefix: redistest.NewPrefix(t)})
	ctx := context.Background()
	// A replica whose link is up may not be online for its master yet.
	var rep map[string]int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if rep, err = s.Replicas(ctx); err != nil {
			t.Fatal(err)
		}
		if len(rep) == 3 && allOne(rep) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Replicas = %v, want three masters with one replica each", rep)
		}
	}
	master := c.Masters(t)[0]
	info, err := c.Node(t, master).Client(t).Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`slave0:ip=([^,]+),port=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no replica in the INFO of %s:\n%s", master, info)
	}
	replica := c.Node(t, m[1]+":"+m[2])

	// Numbers of three batches each, on the master and off it.
	var on, off [3][]Callback
	at := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	for i := uint64(0); len(on[2]) < 5 || len(off[2]) < 5; i++ {
		n := 919_800_000_000 + i*7919
		node, err := cc.MasterForKey(ctx, s.memKey(slotOf(n).bucket))
		if err != nil {
			t.Fatal(err)
		}
		cb := Callback{Number: n, Capability: Capable, At: at}
		side := &off
		if node.Options().Addr == master {
			side = &on
		}
		for k := range side {
			if len(side[k]) < 5 {
				side[k] = append(side[k], cb)
				break
			}
		}
	}
	r := Replication{Replicas: rep, Timeout: 300 * time.Millisecond}
	// Online, a replica is sent writes once it acknowledged its sync.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := s.IngestReplicated(ctx, append(on[0], off[0]...), r)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("every replica up: %v", err)
		}
	}

	thaw := replica.Freeze(t)
	if _, err := s.IngestReplicated(ctx, off[1], r); err != nil {
		t.Fatalf("the other masters' replicas up: %v", err)
	}
	batch := append(off[2], on[1]...)
	if res, err := s.IngestReplicated(ctx, batch, r); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("%s's replica frozen: %v, %v; want ErrNotReplicated", master, res, err)
	}
	thaw()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := s.IngestReplicated(ctx, batch, r)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thawed: %v", err)
		}
	}
	if _, err := s.IngestReplicated(ctx, on[2], r); err != nil {
		t.Fatalf("thawed, new numbers: %v", err)
	}
}

func allOne(rep map[string]int) bool {
	for _, n := range rep {
		if n != 1 {
			return false
		}
	}
	return true
}
