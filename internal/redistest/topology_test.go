package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestStartSentinel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var s *Sentinel
	t.Run("set-up", func(t *testing.T) {
		s = StartSentinel(t)
		if !strings.HasPrefix(s.URL, "redis-sentinel://127.0.0.1:") || !strings.HasSuffix(s.URL, "?master="+SentinelMaster) {
			t.Errorf("URL = %q", s.URL)
		}
		if got := s.Master(t); got != s.Data[0] {
			t.Fatalf("master at start is %s, want Data[0] %s", got.Addr, s.Data[0].Addr)
		}
		rdb := s.Client(t)
		if err := rdb.Set(ctx, "k", "before", 0).Err(); err != nil {
			t.Fatal(err)
		}
		// What the master had replicated survives its death.
		if n, err := rdb.Wait(ctx, 1, 10*time.Second).Result(); err != nil || n < 1 {
			t.Fatalf("WAIT 1: %d replicas acknowledged the write (%v)", n, err)
		}
		next := s.KillMaster(t)
		if next != s.Data[1] {
			t.Fatalf("KillMaster promoted %s, want the replica %s", next.Addr, s.Data[1].Addr)
		}
		if !s.Data[0].exited() {
			t.Errorf("the killed master still runs")
		}
		if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "before" {
			t.Errorf("GET k on the new master = %q, %v; want before", got, err)
		}
		if err := rdb.Set(ctx, "k", "after", 0).Err(); err != nil {
			t.Errorf("SET on the new master: %v", err)
		}
	})
	// Cleanup stopped every process.
	for i, p := range append(s.Data[:], s.Sentinels[:]...) {
		if !p.exited() {
			t.Errorf("process %d (%s) still runs after the test", i, p.Addr)
		}
	}
}

func TestStartCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var c *Cluster
	t.Run("set-up", func(t *testing.T) {
		c = StartCluster(t)
		if len(c.Nodes) != 6 || !strings.HasPrefix(c.URL, "redis-cluster://127.0.0.1:") || strings.Count(c.URL, ",") != 5 {
			t.Errorf("%d nodes, URL %q; want 6 nodes, all in the URL", len(c.Nodes), c.URL)
		}
		ms := c.Masters(t)
		if len(ms) != 3 {
			t.Fatalf("masters %v, want 3", ms)
		}
		rdb := c.Client(t)
		for i := range 100 {
			if err := rdb.Set(ctx, fmt.Sprint("k", i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		// Keys spread over the masters.
		for _, m := range ms {
			n, err := c.Node(t, m).Client(t).DBSize(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 || n == 100 {
				t.Errorf("master %s holds %d of 100 keys", m, n)
			}
		}
		c.KillMaster(t, ms[0])
		after := c.Masters(t)
		if len(after) != 3 || containsStr(after, ms[0]) {
			t.Fatalf("masters after the failover %v, want 3 without %s", after, ms[0])
		}
		if err := rdb.Set(ctx, "k0", "after", 0).Err(); err != nil {
			t.Errorf("SET after the failover: %v", err)
		}
	})
	for i, n := range c.Nodes {
		if !n.exited() {
			t.Errorf("node %d (%s) still runs after the test", i, n.Addr)
		}
	}
}

// Not parallel: it sets environment variables.
func TestTopologiesFailWithoutBinary(t *testing.T) {
	t.Setenv(EnvServer, "/nonexistent/redis-server")
	t.Setenv("CI", "")
	for name, start := range map[string]func(testing.TB){
		"sentinel": func(tb testing.TB) { StartSentinel(tb) },
		"cluster":  func(tb testing.TB) { StartCluster(tb) },
	} {
		f := &fakeTB{TB: t}
		f.run(start)
		if f.failed == "" || f.skipped != "" {
			t.Errorf("%s: skipped %q, failed %q; want a failure, never a skip", name, f.skipped, f.failed)
		}
	}
}
