package e2e_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
)

// maxMasterShare bounds the share of a job's bytes on any one master of a
// three-master cluster.
const maxMasterShare = 0.40

// jobBytes sums MEMORY USAGE of job id's keys on each master of c, after
// SCAN of each master's own keys.
func jobBytes(t *testing.T, c *redistest.Cluster, id string) (byMaster, inputByMaster map[string]int64, total int64) {
	t.Helper()
	ctx := context.Background()
	byMaster, inputByMaster = map[string]int64{}, map[string]int64{}
	byKind := map[string]int64{}
	defer func() { t.Logf("bytes by kind of key: %v", byKind) }()
	for _, addr := range c.Masters(t) {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		iter := rdb.Scan(ctx, 0, "capcheck:job:{"+id+"*", 1000).Iterator()
		for iter.Next(ctx) {
			n, err := rdb.MemoryUsage(ctx, iter.Val(), 0).Result()
			if err != nil {
				t.Fatalf("MEMORY USAGE %s on %s: %v", iter.Val(), addr, err)
			}
			byMaster[addr] += n
			total += n
			kind := keyKind(id, iter.Val())
			byKind[kind] += n
			if strings.HasSuffix(kind, ":chunk") {
				inputByMaster[addr] += n
			}
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		rdb.Close()
	}
	return byMaster, inputByMaster, total
}

// keyKind is a job's key without the job ID and chunk numbers:
// "{J}:out:", "{J:N}:chunk", ...
func keyKind(id, key string) string {
	k := strings.TrimPrefix(key, "capcheck:job:{"+id)
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, k)
}

// spread runs a job of rows numbers with replicas workers and returns the
// numbers per second the workers sent and, on a cluster c, the largest share
// of the job's bytes on one master, and of its input (the chunk blobs).
func spread(t *testing.T, e *env, c *redistest.Cluster, id string, rows, chunkSize, replicas int, rate string) (worst, worstInput, perSec float64) {
	t.Helper()
	m := e.startMock("mock-api", "--reject-suffix", rejectSuffix, "--seed", "11", "--rate", "0")
	for i := range replicas {
		e.startWorker(fmt.Sprintf("worker-%d", i+1), m, apiKey, "--rate", rate, "--batch-size", "100", "--concurrency", "8")
	}
	l := e.genList("input.csv", rows, 11, rejectSuffix, 1)
	e.enqueue(id, l, chunkSize)
	j := e.waitJob(id, 30*time.Minute)
	if j.State != jobstore.Done {
		t.Fatalf("job ended %s (%s)", j.State, j.Abort)
	}
	sent := j.Valid
	secs := j.FinishedAt.Sub(j.StartedAt).Seconds()
	perSec = float64(sent) / secs
	if c == nil {
		return 0, 0, perSec
	}
	byMaster, inputByMaster, total := jobBytes(t, c, id)
	var input int64
	for _, n := range inputByMaster {
		input += n
	}
	var shares []string
	for addr, n := range byMaster {
		share, inShare := float64(n)/float64(total), float64(inputByMaster[addr])/float64(input)
		worst, worstInput = max(worst, share), max(worstInput, inShare)
		shares = append(shares, fmt.Sprintf("%s %d bytes (%.1f%%; input %.1f%%)", addr, n, 100*share, 100*inShare))
	}
	slices.Sort(shares)
	t.Logf("job %s: %d numbers, %d bytes (%d of input) on the masters: %s", id, rows, total, input, strings.Join(shares, ", "))
	return worst, worstInput, perSec
}

// TestClusterSpread: a job's bytes spread over the masters of a cluster:
// no master holds more than 40% of them, nor of its input (the chunk
// blobs). The slots are fixed by the job ID, the chunk count and
// redis-cli's slot ranges; in chunks of 50 the job has 50 chunk groups
// (docs/design.md), which fall evenly on the masters.
func TestClusterSpread(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	e := newEnvOn(t, c.URL)
	worst, worstInput, _ := spread(t, e, c, "e2e-spread", 20000, 50, 2, "2000")
	t.Logf("largest share on one master: %.1f%% of the job's bytes, %.1f%% of its input", 100*worst, 100*worstInput)
	checkShares(t, worst, worstInput)
}

// checkShares fails t when one master holds more than maxMasterShare of a
// job's bytes or of its input.
func checkShares(t *testing.T, worst, worstInput float64) {
	t.Helper()
	if worst > maxMasterShare {
		t.Errorf("one master holds %.1f%% of the job's bytes, want at most %.0f%%", 100*worst, 100*maxMasterShare)
	}
	if worstInput > maxMasterShare {
		t.Errorf("one master holds %.1f%% of the job's input, want at most %.0f%%", 100*worstInput, 100*maxMasterShare)
	}
}

// TestBenchCluster measures, with CAPCHECK_BENCH_CLUSTER=1 (make
// bench-cluster): the per-master share of a 1,000,000-number job's bytes on
// a three-master cluster, and the numbers per second of 20 worker replicas
// on the cluster and on one Redis.
func TestBenchCluster(t *testing.T) {
	if os.Getenv("CAPCHECK_BENCH_CLUSTER") != "1" {
		t.Skip("a benchmark: set CAPCHECK_BENCH_CLUSTER=1 (make bench-cluster)")
	}
	rows := 1_000_000
	const replicas, rate = 20, "20000"
	c := redistest.StartCluster(t)
	worst, worstInput, onCluster := spread(t, newEnvOn(t, c.URL), c, "bench-cluster", rows, 1000, replicas, rate)
	c.Stop()
	_, _, onOne := spread(t, newEnv(t, true), nil, "bench-single", rows, 1000, replicas, rate)
	t.Logf("largest share on one master: %.1f%% of the job's bytes, %.1f%% of its input", 100*worst, 100*worstInput)
	t.Logf("%d replicas: %.0f numbers/s on the cluster, %.0f numbers/s on one Redis (ratio %.2f)",
		replicas, onCluster, onOne, onCluster/onOne)
	checkShares(t, worst, worstInput)
}
