package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterNodeTimeout is the cluster-node-timeout of [StartCluster]: small,
// so that a replica takes over a dead master in a second or two rather than
// the quarter minute of Redis's default.
const ClusterNodeTimeout = 500 * time.Millisecond

// clusterMasters is the number of masters of [StartCluster]; each has one
// replica.
const clusterMasters = 3

// Cluster is a Redis Cluster of three masters with one replica each, each
// node a redis-server of its own on loopback.
type Cluster struct {
	// Nodes are the six nodes. Which are masters changes with failovers: ask
	// [Cluster.Masters].
	Nodes []*Server
	// URL is the cluster as a --redis URL: redis-cluster://A,B,C,... with
	// the addresses of every node.
	URL string
}

// StartCluster starts six cluster nodes, joins them as three masters with one
// replica each (redis-cli --cluster create), and returns once every slot is
// served and every node says the cluster is ok. tb.Cleanup stops every
// process. A cluster that cannot start fails the test (it is never skipped:
// a missing redis-server or redis-cli is a broken test machine).
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	return setUp(tb, "cluster", startCluster)
}

func startCluster() (_ *Cluster, err error) {
	cli, err := findCLI()
	if err != nil {
		return nil, err
	}
	// Not the named result: that is nil on the error paths, and the nodes
	// started so far must still be stopped.
	c := &Cluster{}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	addrs := make([]string, 0, 2*clusterMasters)
	for i := range 2 * clusterMasters {
		n, err := startWith(freeClusterPort, func(port int) procSpec {
			return procSpec{port: port, args: clusterArgs()}
		})
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i+1, err)
		}
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr)
	}
	c.URL = "redis-cluster://" + strings.Join(addrs, ",")

	ctx, cancel := context.WithTimeout(context.Background(), failoverWait)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, tail(out))
	}
	if err := poll(ctx, c.healthy); err != nil {
		return nil, err
	}
	return c, nil
}

// clusterArgs make a node a cluster member that fails over fast and feeds a
// new replica without a disk.
func clusterArgs() []string {
	return append(replArgs(),
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout/time.Millisecond)),
		// A replica takes over however long its link was down.
		"--cluster-replica-validity-factor", "0",
	)
}

// freeClusterPort returns a free port whose cluster bus port (+10000) is
// free too.
func freeClusterPort() (int, error) {
	for range 50 {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		if port+10000 > 65535 {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, errors.New("no free port with a free cluster bus port")
}

// findCLI returns the path of redis-cli, next to redis-server or in PATH.
func findCLI() (string, error) {
	bin, err := findBinary()
	if err != nil {
		return "", err
	}
	if i := strings.LastIndexByte(bin, '/'); i >= 0 {
		p := bin[:i+1] + "redis-cli"
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath("redis-cli")
	if err != nil {
		return "", fmt.Errorf("redis-cli not found next to %s or in PATH; install it with `apt-get install -y redis-tools`", bin)
	}
	return p, nil
}

func tail(b []byte) string {
	const max = 2 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return strings.TrimSpace(string(b))
}

// Stop stops every node. Tests rarely need it: StartCluster stops them on
// cleanup.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// Client returns a cluster client of c; tb.Cleanup closes it.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	addrs := make([]string, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		addrs = append(addrs, n.Addr)
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// healthy checks that every live node says the cluster is ok with every slot
// served, that there are three masters, and that every replica is in sync.
func (c *Cluster) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.servesAll(ctx); err != nil {
		return err
	}
	ms, err := c.masters(ctx)
	if err != nil {
		return err
	}
	if len(ms) != clusterMasters {
		return fmt.Errorf("%d masters, want %d", len(ms), clusterMasters)
	}
	for _, n := range c.live() {
		if !containsStr(ms, n.Addr) {
			if err := inSync(ctx, n.Addr); err != nil {
				return err
			}
		}
	}
	return nil
}

// Masters returns the addresses of the masters that serve slots now.
func (c *Cluster) Masters(tb testing.TB) []string {
	tb.Helper()
	return ask(tb, "listing the cluster's masters", c.masters)
}

// masters asks a live node for the cluster's shards and returns the address
// of each master that serves slots.
func (c *Cluster) masters(ctx context.Context) ([]string, error) {
	var errs []error
	for _, n := range c.live() {
		cl := nodeClient(n.Addr)
		slots, err := cl.ClusterSlots(ctx).Result()
		cl.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var ms []string
		for _, s := range slots {
			if len(s.Nodes) > 0 && !containsStr(ms, s.Nodes[0].Addr) {
				ms = append(ms, s.Nodes[0].Addr)
			}
		}
		return ms, nil
	}
	return nil, fmt.Errorf("no live node answers: %w", errors.Join(errs...))
}

// live returns the nodes that have not exited.
func (c *Cluster) live() []*Server {
	var ns []*Server
	for _, n := range c.Nodes {
		if !n.exited() {
			ns = append(ns, n)
		}
	}
	return ns
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Node returns the node at addr.
func (c *Cluster) Node(tb testing.TB, addr string) *Server {
	tb.Helper()
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	tb.Fatalf("redistest: no cluster node at %s", addr)
	return nil
}

// KillMaster kills the master at addr with SIGKILL (writes it had not
// replicated yet are lost, as in a crash) and returns once its replica has
// taken over and every live node says the cluster is ok again. The killed
// node stays down.
func (c *Cluster) KillMaster(tb testing.TB, addr string) {
	tb.Helper()
	c.Node(tb, addr).Stop()
	ctx, cancel := context.WithTimeout(context.Background(), failoverWait)
	defer cancel()
	err := poll(ctx, func() error {
		ms, err := c.masters(ctx)
		if err != nil {
			return err
		}
		if containsStr(ms, addr) || len(ms) != clusterMasters {
			return fmt.Errorf("masters %v: no replica has taken over from %s yet", ms, addr)
		}
		return c.servesAll(ctx)
	})
	if err != nil {
		tb.Fatalf("redistest: no failover after killing the master %s: %v", addr, err)
	}
}

// servesAll checks that every live node says the cluster is ok, with every
// slot served.
func (c *Cluster) servesAll(ctx context.Context) error {
	for _, n := range c.live() {
		cl := nodeClient(n.Addr)
		info, err := cl.ClusterInfo(ctx).Result()
		cl.Close()
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return fmt.Errorf("node %s: cluster not ok yet", n.Addr)
		}
	}
	return nil
}

// MigrateSlots moves each of slots to the master at to, the way redis-cli
// --cluster reshard does, while clients go on: the slot is set IMPORTING on
// to and MIGRATING on its owner, its keys are moved one at a time (MIGRATE),
// with pause between two, so that clients meet the slot half moved (ASK and
// TRYAGAIN redirections), then every master is told the slot's new owner.
// Slots that to owns already are left alone.
func (c *Cluster) MigrateSlots(tb testing.TB, slots []int, to string, pause time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failoverWait)
	defer cancel()
	if err := c.migrateSlots(ctx, slots, to, pause); err != nil {
		tb.Fatalf("redistest: migrating slots %v to %s: %v", slots, to, err)
	}
}

func (c *Cluster) migrateSlots(ctx context.Context, slots []int, to string, pause time.Duration) error {
	clients := map[string]*redis.Client{}
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	node := func(addr string) *redis.Client {
		if clients[addr] == nil {
			clients[addr] = nodeClient(addr)
		}
		return clients[addr]
	}
	dst := node(to)
	dstID, err := dst.ClusterMyID(ctx).Result()
	if err != nil {
		return err
	}
	masters, err := c.masters(ctx)
	if err != nil {
		return err
	}
	ranges, err := dst.ClusterSlots(ctx).Result()
	if err != nil {
		return err
	}
	owner := func(slot int) (redis.ClusterNode, bool) {
		for _, r := range ranges {
			if r.Start <= slot && slot <= r.End && len(r.Nodes) > 0 {
				return r.Nodes[0], true
			}
		}
		return redis.ClusterNode{}, false
	}
	host, port, err := net.SplitHostPort(to)
	if err != nil {
		return err
	}
	for _, slot := range slots {
		from, ok := owner(slot)
		if !ok {
			return fmt.Errorf("slot %d has no owner", slot)
		}
		if from.ID == dstID {
			continue
		}
		src := node(from.Addr)
		if err := dst.Do(ctx, "cluster", "setslot", slot, "importing", from.ID).Err(); err != nil {
			return fmt.Errorf("slot %d importing on %s: %w", slot, to, err)
		}
		if err := src.Do(ctx, "cluster", "setslot", slot, "migrating", dstID).Err(); err != nil {
			return fmt.Errorf("slot %d migrating on %s: %w", slot, from.Addr, err)
		}
		if err := moveKeys(ctx, src, slot, host, port, pause); err != nil {
			return err
		}
		// The new owner first, then the old one (it stops redirecting with
		// ASK), then the others, as redis-cli does.
		for _, addr := range append([]string{to, from.Addr}, masters...) {
			if err := node(addr).Do(ctx, "cluster", "setslot", slot, "node", dstID).Err(); err != nil {
				return fmt.Errorf("slot %d: telling %s its owner: %w", slot, addr, err)
			}
		}
	}
	return poll(ctx, func() error { return c.servesAll(ctx) })
}

// moveKeys moves the keys of slot from src to host:port one at a time
// (MIGRATE), with pause between two.
func moveKeys(ctx context.Context, src *redis.Client, slot int, host, port string, pause time.Duration) error {
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 1).Result()
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return nil
		}
		if err := src.Do(ctx, "migrate", host, port, keys[0], 0, 5000).Err(); err != nil {
			return fmt.Errorf("slot %d: MIGRATE %s: %w", slot, keys[0], err)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
