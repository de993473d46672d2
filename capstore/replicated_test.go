package capstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

	// Each master written to has a mark key of the batch's, short-lived.
	var mu sync.Mutex
	marks := 0
	err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, s.prefix+":replmark:*").Result()
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return fmt.Errorf("no mark key on %s", c.Options().Addr)
		}
		for _, k := range keys {
			if d, err := c.PTTL(ctx, k).Result(); err != nil || d <= 0 || d > markTTL {
				return fmt.Errorf("mark key %s expires in %v (%v), want within %v", k, d, err, markTTL)
			}
		}
		mu.Lock()
		marks += len(keys)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[uint32]bool{}
	for _, cb := range append(on[0], off[0]...) {
		tags[slotOf(cb.Number).tag()] = true
	}
	if marks > len(tags) {
		t.Errorf("%d mark keys, want at most one per hash tag written (%d)", marks, len(tags))
	}

	thaw := replica.Freeze(t)
	// A batch that writes nothing of its own on the master (duplicates)
	// still waits for the replica: its WAIT covers the batch's mark. Redis
	// 7.0 cannot show the failure without the mark (its WAIT covers the
	// master's offset at the connection's last command); Redis 7.2 and
	// Valkey would confirm such a batch at once, though the records it
	// found were another connection's writes not on the replica yet.
	if res, err := s.IngestReplicated(ctx, on[0], r); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("%s's replica frozen, duplicates: %v, %v; want ErrNotReplicated", master, res, err)
	}
	// The wait ends by the batch's deadline, though WAIT's timeout is longer.
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	start := time.Now()
	_, err = s.IngestReplicated(dctx, on[0], Replication{Replicas: rep, Timeout: 5 * time.Second})
	cancel()
	if d := time.Since(start); !errors.Is(err, ErrNotReplicated) || d > time.Second {
		t.Fatalf("deadline in 200ms, WAIT's timeout 5s: %v after %v; want ErrNotReplicated by the deadline", err, d)
	}
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

// TestReplicasRefused: a server that refuses INFO (an ACL user without
// @dangerous, which may still WAIT) is not taken for one without replicas:
// Replicas fails. Only the embedded Redis's refusal means none.
func TestReplicasRefused(t *testing.T) {
	t.Parallel()
	srv := redistest.StartPrivate(t)
	ctx := context.Background()
	admin := srv.Client(t)
	if err := admin.Do(ctx, "ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "+@all", "-@dangerous").Err(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "noinfo", Password: "pw"})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Wait(ctx, 0, time.Millisecond).Err(); err != nil {
		t.Fatalf("WAIT as noinfo: %v", err)
	}
	s := New(c, Options{Prefix: redistest.NewPrefix(t)})
	if rep, err := s.Replicas(ctx); err == nil || !redis.HasErrorPrefix(err, "NOPERM") {
		t.Fatalf("Replicas as a user without INFO = %v, %v; want NOPERM", rep, err)
	}
}

// freezeOn is a hook that freezes srv just as the client sends name.
type freezeOn struct {
	name   string
	freeze func()
	once   sync.Once
}

func (h *freezeOn) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *freezeOn) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == h.name {
			h.once.Do(h.freeze)
		}
		return next(ctx, cmd)
	}
}

func (h *freezeOn) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestIngestReplicatedFrozen: a master that stops answering while a batch
// waits for its replica (frozen, or cut off without a reset) ends the
// batch by its deadline, though go-redis reads a blocked WAIT for 10 s
// past WAIT's timeout.
func TestIngestReplicatedFrozen(t *testing.T) {
	t.Parallel()
	srv := redistest.StartPrivate(t)
	c := srv.Client(t)
	c.AddHook(&freezeOn{name: "wait", freeze: func() { srv.Freeze(t) }})
	s := New(c, Options{Prefix: redistest.NewPrefix(t)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	cbs := []Callback{{Number: 919_800_000_001, Capability: Capable, At: time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)}}
	start := time.Now()
	_, err := s.IngestReplicated(ctx, cbs, Replication{Replicas: map[string]int{"": 1}, Timeout: 5 * time.Second})
	if d := time.Since(start); !errors.Is(err, ErrNotReplicated) || d > 1500*time.Millisecond {
		t.Fatalf("master frozen as WAIT is sent, deadline in 1s: %v after %v; want ErrNotReplicated by the deadline", err, d)
	}
}
