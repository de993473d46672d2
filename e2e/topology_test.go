package e2e_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/internal/testbin"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/mockapi"
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

// capableFraction is the share of accepted numbers the simulator calls back
// as capable in the failover tests with callbacks.
const capableFraction = 0.4

// runUnderFailover runs a job with three workers that share no disk and a
// wait on e, calls failover once the API has seen some of its requests, and
// checks that the job finishes, that wait writes exact files on its own
// host, and that no worker wrote any. With callbacks, a receiver (capcheck
// callbacks) takes the simulator's callbacks all along, the job waits for
// them, and every accepted number must end with the capability the
// simulator gave it. It returns the simulator's statistics at the end.
func runUnderFailover(t *testing.T, e *env, id string, callbacks bool, failover func()) mockStats {
	t.Helper()
	mockArgs := []string{"--reject-suffix", rejectSuffix, "--latency", "20ms", "--seed", "7"}
	if callbacks {
		cbAddr := freeAddr(t)
		e.startReceiver("callbacks", cbAddr)
		mockArgs = append(mockArgs, "--callback-url", "http://"+cbAddr+"/callback", "--callback-token", callbackToken,
			"--callback-delay", "200ms", "--callback-jitter", "800ms",
			"--capable-fraction", strconv.FormatFloat(capableFraction, 'f', -1, 64))
	}
	m := e.startMock("mock-api", mockArgs...)
	for _, name := range []string{"worker-1", "worker-2", "worker-3"} {
		// A slow rate, so that the failover falls mid-run.
		e.startWorkerNoDisk(name, m, "--rate", "40")
	}
	l := e.genList("input.csv", 4000, 7, rejectSuffix, 1)
	if callbacks {
		e.enqueueWait(id, l, "2m")
	} else {
		e.enqueue(id, l, 100)
	}
	waitOut := filepath.Join(e.dir, "wait-host")
	wait := e.start("wait", nil, append([]string{"wait", id, "--out", waitOut}, e.redisArgs()...)...)

	var before mockStats
	if failover != nil {
		caps := capstore.New(e.store.Redis(), capstore.Options{})
		waitFor(t, "the job under way", 60*time.Second, func() bool {
			if m.stats(t).Requests < 20 {
				return false
			}
			jc, err := caps.JobCounts(context.Background(), id)
			return !callbacks || err == nil && jc.Received > 0 // callbacks streaming
		})
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
	byRow := checkOutputs(t, filepath.Join(waitOut, id), l, wantAPI)
	if callbacks {
		accepted := 0
		for row, rec := range byRow {
			want := ""
			if rec[3] == "accepted" {
				accepted++
				want = mockapi.CapabilityStatus(rec[2], capableFraction)
			}
			if rec[8] != want {
				t.Errorf("row %d %s (%s): capability %q, the simulator says %q", row, rec[2], rec[3], rec[8], want)
			}
		}
		t.Logf("%d accepted numbers, each with the capability of its callback", accepted)
	}
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
	if st := runUnderFailover(t, e, "e2e-cluster", false, nil); st.Repeated != 0 {
		t.Errorf("the simulator accepted %d numbers more than once, want 0 without a failover", st.Repeated)
	}
}

// TestSentinelFailover: the Sentinel-managed master is killed mid-run while
// callbacks stream in; the workers, the wait, the callback receiver and the
// job store follow the promoted replica, and the job finishes with exact
// files, every accepted number with its callback's capability. Numbers may
// be sent again only as far as asynchronous replication lost recorded
// outcomes.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	e := newEnvOn(t, s.URL)
	st := runUnderFailover(t, e, "e2e-sentinel", true, func() { s.KillMaster(t) })
	t.Logf("numbers sent again after the failover: %d", st.Repeated)
}

// recordMaster returns the cluster master that holds job id's record.
func recordMaster(t *testing.T, e *env, id string) *redis.Client {
	t.Helper()
	cc, ok := e.store.Redis().(*redis.ClusterClient)
	if !ok {
		t.Fatalf("the store's client is a %T, want a cluster client", e.store.Redis())
	}
	node, err := cc.MasterForKey(context.Background(), "capcheck:job:{"+id+"}")
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// TestClusterFailover: the master that holds the job's record (and the
// outcomes of some of its chunk groups) is killed mid-run; its replica
// takes over and the job finishes with exact files.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	e := newEnvOn(t, c.URL)
	const id = "e2e-cluster-failover"
	st := runUnderFailover(t, e, id, false, func() {
		c.KillMaster(t, recordMaster(t, e, id).Options().Addr)
	})
	t.Logf("numbers sent again after the failover: %d", st.Repeated)
}

// TestClusterSlotMigration: mid-run, every slot that holds the job's keys on
// the master of its record moves to another master, key by key, while the
// workers, the wait and the job store go on (ASK and TRYAGAIN redirections;
// every script declares its keys); the job finishes with exact files.
func TestClusterSlotMigration(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	e := newEnvOn(t, c.URL)
	const id = "e2e-cluster-migration"
	st := runUnderFailover(t, e, id, false, func() {
		ctx := context.Background()
		node := recordMaster(t, e, id)
		from := node.Options().Addr
		slots := map[int]bool{}
		iter := node.Scan(ctx, 0, "capcheck:job:{"+id+"*", 1000).Iterator()
		for iter.Next(ctx) {
			slot, err := node.ClusterKeySlot(ctx, iter.Val()).Result()
			if err != nil {
				t.Fatal(err)
			}
			slots[int(slot)] = true
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		var to string
		for _, m := range c.Masters(t) {
			if m != from {
				to = m
				break
			}
		}
		list := make([]int, 0, len(slots))
		for s := range slots {
			list = append(list, s)
		}
		begin := time.Now()
		c.MigrateSlots(t, list, to, 10*time.Millisecond)
		t.Logf("moved %d slots of the job from %s to %s in %v", len(list), from, to, time.Since(begin).Round(time.Millisecond))
	})
	t.Logf("numbers sent again: %d", st.Repeated)
}
