package jobstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
)

// With WithReplicaWait, a chunk blob and a chunk's done mark are on the
// replica when the call returns, on Sentinel and on Cluster.
func TestReplicaWait(t *testing.T) {
	t.Parallel()
	for name, start := range map[string]func(t *testing.T) (redis.UniversalClient, func(t *testing.T) []*redis.Client){
		"sentinel": func(t *testing.T) (redis.UniversalClient, func(t *testing.T) []*redis.Client) {
			s := redistest.StartSentinel(t)
			return s.Client(t), func(t *testing.T) []*redis.Client { return []*redis.Client{s.Data[1].Client(t)} }
		},
		"cluster": func(t *testing.T) (redis.UniversalClient, func(t *testing.T) []*redis.Client) {
			c := redistest.StartCluster(t)
			return c.Client(t), func(t *testing.T) []*redis.Client {
				var rs []*redis.Client
				ms := c.Masters(t)
				for _, n := range c.Nodes {
					if !contains(ms, n.Addr) {
						rs = append(rs, n.Client(t))
					}
				}
				return rs
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rdb, replicas := start(t)
			b := bundle{ctx: context.Background(), store: jobstore.New(rdb, jobstore.WithReplicaWait(time.Second)), id: redistest.NewPrefix(t)}
			b.enqueued(t, 2, 4)
			// Each chunk blob is on a replica already: read it there.
			for i := range 2 {
				if !onSomeReplica(t, replicas(t), b.id, i) {
					t.Errorf("chunk %d is on no replica right after PutChunk", i)
				}
			}
			// FinishChunk's script runs with the wait too, and says why it
			// refuses an unsettled chunk.
			if _, err := b.store.FinishChunk(b.ctx, b.id, 0, 0, 4); !errors.Is(err, jobstore.ErrUnsettled) {
				t.Fatalf("FinishChunk of an unsettled chunk: err = %v, want ErrUnsettled", err)
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// onSomeReplica reports whether a replica in rs holds chunk i of job id: a
// replica answers READONLY reads of its master's slots and MOVED for others.
func onSomeReplica(t *testing.T, rs []*redis.Client, id string, i int) bool {
	t.Helper()
	ctx := context.Background()
	for _, r := range rs {
		conn := r.Conn()
		if err := conn.ReadOnly(ctx).Err(); err != nil && !isNotCluster(err) {
			t.Fatal(err)
		}
		n, err := conn.Exists(ctx, jobstore.ChunkKeyForTest(id, i)).Result()
		conn.Close()
		if err == nil && n == 1 {
			return true
		}
	}
	return false
}

func isNotCluster(err error) bool {
	return err != nil && err.Error() == "ERR This instance has cluster support disabled"
}
