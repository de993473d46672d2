package e2e_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/internal/testbin"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/redisconn"
)

// newEnvOn is newEnv on the Redis of url: a Sentinel set-up or a cluster.
// Its job store follows failovers as capcheck's own clients do.
func newEnvOn(t *testing.T, url string) *env {
	t.Helper()
	n := &env{t: t, bin: testbin.Build(t), dir: t.TempDir(), redisURL: url}
	n.out = filepath.Join(n.dir, "out")
	u, err := redisconn.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := u.NewClient(redisconn.Options{})
	t.Cleanup(func() { _ = rdb.Close() })
	n.store = jobstore.New(rdb)
	return n
}

// startWorkerNoDisk starts a worker as startWorker does but without --out:
// it writes no files (it would write them under ./out, which is e.out).
func (n *env) startWorkerNoDisk(name string, m *mock, extra ...string) *proc {
	n.t.Helper()
	args := append([]string{"worker"}, n.redisArgs()...)
	args = append(args, m.apiArgs(apiKey)...)
	args = append(args, "--batch-size", "50", "--concurrency", "4", "--timeout", "5s",
		"--max-attempts", "8", "--shutdown-timeout", "10s")
	return n.start(name, nil, append(args, extra...)...)
}

// runUnderFailover runs a job with three workers that share no disk and a
// wait on e, calls failover once the API has seen some of its requests, and
// checks that the job finishes, that wait writes exact files on its own
// host, and that no worker wrote any. It returns the simulator's statistics
// at the end.
func runUnderFailover(t *testing.T, e *env, id string, failover func()) mockStats {
	t.Helper()
	m := e.startMock("mock-api", "--reject-suffix", rejectSuffix, "--latency", "20ms", "--seed", "7")
	for _, name := range []string{"worker-1", "worker-2", "worker-3"} {
		// A slow rate, so that the failover falls mid-run.
		e.startWorkerNoDisk(name, m, "--rate", "40")
	}
	l := e.genList("input.csv", 4000, 7, rejectSuffix, 1)
	e.enqueue(id, l, 100)
	waitOut := filepath.Join(e.dir, "wait-host")
	wait := e.start("wait", nil, append([]string{"wait", id, "--out", waitOut}, e.redisArgs()...)...)

	var before mockStats
	if failover != nil {
		waitFor(t, "the job under way", 60*time.Second, func() bool { return m.stats(t).Requests >= 20 })
		before = m.stats(t)
		failover()
	}
	wait.wantExit(t, 120*time.Second, 0)
	j, err := e.store.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != jobstore.Done || j.Abort != "" {
		t.Fatalf("job ended %s (%s)", j.State, j.Abort)
	}
	checkOutputs(t, filepath.Join(waitOut, id), l, wantAPI)
	// enqueue wrote rejects.csv there; the workers wrote nothing.
	if _, err := os.Stat(filepath.Join(e.out, id, "results.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a worker without --out wrote results.csv under ./out (stat: %v)", err)
	}
	st := m.stats(t)
	t.Logf("requests before the failover %d; at the end %+v", before.Requests, st)
	return st
}

// TestCluster: a job on a Redis Cluster with three workers.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	e := newEnvOn(t, c.URL)
	if st := runUnderFailover(t, e, "e2e-cluster", nil); st.Repeated != 0 {
		t.Errorf("the simulator accepted %d numbers more than once, want 0 without a failover", st.Repeated)
	}
}

// TestSentinelFailover: the Sentinel-managed master is killed mid-run; the
// workers, the wait and the job store follow the promoted replica, and the
// job finishes with exact files. Numbers may be sent again only as far as
// asynchronous replication lost recorded outcomes.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	e := newEnvOn(t, s.URL)
	st := runUnderFailover(t, e, "e2e-sentinel", func() { s.KillMaster(t) })
	t.Logf("numbers sent again after the failover: %d", st.Repeated)
}

// TestClusterFailover: the master that holds the job's record (where every
// outcome is recorded) is killed mid-run; its replica takes over and the job
// finishes with exact files.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	e := newEnvOn(t, c.URL)
	const id = "e2e-cluster-failover"
	st := runUnderFailover(t, e, id, func() {
		cc, ok := e.store.Redis().(*redis.ClusterClient)
		if !ok {
			t.Fatalf("the store's client is a %T, want a cluster client", e.store.Redis())
		}
		node, err := cc.MasterForKey(context.Background(), "capcheck:job:{"+id+"}")
		if err != nil {
			t.Fatal(err)
		}
		c.KillMaster(t, node.Options().Addr)
	})
	t.Logf("numbers sent again after the failover: %d", st.Repeated)
}
