package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the sentinels of [StartSentinel] monitor.
const SentinelMaster = "capcheck"

// SentinelDownAfter is how long a master must be silent before the
// sentinels of [StartSentinel] call it down: small, so that a failover in a
// test takes about two seconds rather than the half minute of Redis's
// default.
const SentinelDownAfter = 500 * time.Millisecond

// failoverWait bounds how long helpers wait for Redis to settle a topology:
// replicas in sync, sentinels that know each other, a promoted master.
const failoverWait = 30 * time.Second

// Sentinel is a master, a replica and three sentinels, each a redis-server
// of its own on loopback, as a Sentinel-managed Redis in production.
type Sentinel struct {
	// Data holds the two data servers: Data[0] is the master at start and
	// Data[1] its replica. A failover swaps their roles, not their places.
	Data [2]*Server
	// Sentinels are the three sentinels (quorum 2).
	Sentinels [3]*Server
	// URL is the set-up as a --redis URL:
	// redis-sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3?master=capcheck
	URL string
}

// StartSentinel starts a master, its replica and three sentinels that
// monitor it, and returns once the replica is in sync and each sentinel
// knows the replica and the two other sentinels, so that a failover can
// start at once. tb.Cleanup stops every process. A set-up that cannot start
// fails the test (it is never skipped: a missing redis-server is a broken
// test machine).
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	return setUp(tb, "sentinel", func() (*Sentinel, error) { return retryOnClash(trySentinel) })
}

// trySentinel starts the set-up once. The sentinels are told of each other
// and of the replica in their config files (with IDs chosen here), so they
// need not discover them, which takes a few seconds.
func trySentinel() (s *Sentinel, err error) {
	s = &Sentinel{}
	var all []*Server
	defer func() {
		if err != nil {
			for _, p := range all {
				p.Stop()
			}
		}
	}()
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	ports := make([]int, 2+len(s.Sentinels))
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
	}
	mport, rport := strconv.Itoa(ports[0]), strconv.Itoa(ports[1])
	specs := []procSpec{
		{port: ports[0], args: replArgs()},
		{port: ports[1], args: append(replArgs(), "--replicaof", "127.0.0.1", mport)},
	}
	ids := make([]string, len(s.Sentinels))
	for i := range ids {
		ids[i] = sentinelID(i)
	}
	for i := range s.Sentinels {
		specs = append(specs, procSpec{port: ports[2+i], conf: sentinelConf(i, ids, ports[2:], mport, rport), args: []string{"--sentinel"}})
	}
	for i, spec := range specs {
		p, err := startProc(bin, spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sentinelRole(i), err)
		}
		all = append(all, p)
	}
	s.Data = [2]*Server{all[0], all[1]}
	addrs := make([]string, 0, len(s.Sentinels))
	for i := range s.Sentinels {
		s.Sentinels[i] = all[2+i]
		addrs = append(addrs, all[2+i].Addr)
	}
	s.URL = "redis-sentinel://" + strings.Join(addrs, ",") + "?master=" + SentinelMaster
	ctx, cancel := context.WithTimeout(context.Background(), failoverWait)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func sentinelRole(i int) string {
	switch i {
	case 0:
		return "master"
	case 1:
		return "replica"
	}
	return fmt.Sprintf("sentinel %d", i-1)
}

// sentinelID is the run ID of sentinel i: 40 hex digits, unique in a set-up.
func sentinelID(i int) string {
	return fmt.Sprintf("%040x", i+1)
}

// replArgs make a master feed a new replica at once, without a disk.
func replArgs() []string {
	return []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", "--repl-diskless-load", "on-empty-db"}
}

// sentinelConf is the config file of sentinel i of the set-up.
func sentinelConf(i int, ids []string, ports []int, mport, rport string) string {
	ms := strconv.Itoa(int(SentinelDownAfter / time.Millisecond))
	lines := []string{
		"sentinel myid " + ids[i],
		"sentinel monitor " + SentinelMaster + " 127.0.0.1 " + mport + " 2",
		"sentinel down-after-milliseconds " + SentinelMaster + " " + ms,
		// Bounds a failover that stalls (and the wait before another try).
		"sentinel failover-timeout " + SentinelMaster + " 5000",
		"sentinel parallel-syncs " + SentinelMaster + " 1",
		"sentinel known-replica " + SentinelMaster + " 127.0.0.1 " + rport,
	}
	for j, id := range ids {
		if j != i {
			lines = append(lines, fmt.Sprintf("sentinel known-sentinel %s 127.0.0.1 %d %s", SentinelMaster, ports[j], id))
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// Stop stops every process of the set-up. Tests rarely need it: StartSentinel
// stops them on cleanup.
func (s *Sentinel) Stop() {
	for _, p := range s.Sentinels {
		p.Stop()
	}
	for _, p := range s.Data {
		p.Stop()
	}
}

// waitReady waits until the replica is in sync and every sentinel knows the
// replica and the two other sentinels.
func (s *Sentinel) waitReady(ctx context.Context) error {
	return poll(ctx, func() error {
		if err := inSync(ctx, s.Data[1].Addr); err != nil {
			return err
		}
		for i, p := range s.Sentinels {
			if err := knowsAll(ctx, p.Addr); err != nil {
				return fmt.Errorf("sentinel %d: %w", i+1, err)
			}
		}
		return nil
	})
}

// inSync checks that the replica at addr has a live link to its master.
func inSync(ctx context.Context, addr string) error {
	return replicationSays(ctx, addr, "master_link_status:up", "replica %s: link to its master not up yet")
}

// replicationSays checks that the server at addr has field:value in its
// INFO replication; notYet, with addr for its %s, says what it is not yet.
func replicationSays(ctx context.Context, addr, fieldValue, notYet string) error {
	c := nodeClient(addr)
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, fieldValue) {
		return fmt.Errorf(notYet, addr)
	}
	return nil
}

// knowsAll checks that the sentinel at addr sees one replica and two other
// sentinels of the master.
func knowsAll(ctx context.Context, addr string) error {
	c := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	replicas, err := c.Replicas(ctx, SentinelMaster).Result()
	if err != nil {
		return err
	}
	if n := countUp(replicas); n < 1 {
		return errors.New("the replica is not known yet")
	}
	sentinels, err := c.Sentinels(ctx, SentinelMaster).Result()
	if err != nil {
		return err
	}
	if len(sentinels) < 2 {
		return fmt.Errorf("knows %d other sentinels, want 2", len(sentinels))
	}
	return nil
}

// countUp counts the replicas a sentinel does not flag as down.
func countUp(replicas []map[string]string) int {
	n := 0
	for _, r := range replicas {
		if !strings.Contains(r["flags"], "down") {
			n++
		}
	}
	return n
}

// Client returns a client of the set-up that follows the master through
// failovers, as capcheck's does; tb.Cleanup closes it.
func (s *Sentinel) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	addrs := make([]string, 0, len(s.Sentinels))
	for _, p := range s.Sentinels {
		addrs = append(addrs, p.Addr)
	}
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: addrs})
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// MasterAddr returns the address the sentinels give as the master now.
func (s *Sentinel) MasterAddr(tb testing.TB) string {
	tb.Helper()
	return ask(tb, "asking the sentinels for the master", s.masterAddr)
}

func (s *Sentinel) masterAddr(ctx context.Context) (string, error) {
	var errs []error
	for _, p := range s.Sentinels {
		if p.exited() {
			continue
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: p.Addr, MaxRetries: -1})
		hp, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		c.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// Master returns the data server that is the master now.
func (s *Sentinel) Master(tb testing.TB) *Server {
	tb.Helper()
	addr := s.MasterAddr(tb)
	for _, p := range s.Data {
		if p.Addr == addr {
			return p
		}
	}
	tb.Fatalf("redistest: the sentinels name %s as master, which is none of the data servers", addr)
	return nil
}

// KillMaster kills the current master with SIGKILL (writes it had not
// replicated yet are lost, as in a crash) and returns once the sentinels
// have promoted the replica and it accepts writes. It returns the new
// master. The killed server stays down.
func (s *Sentinel) KillMaster(tb testing.TB) *Server {
	tb.Helper()
	old := s.Master(tb)
	old.Stop()
	var next *Server
	for _, p := range s.Data {
		if p != old {
			next = p
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), failoverWait)
	defer cancel()
	err := poll(ctx, func() error {
		addr, err := s.masterAddr(ctx)
		if err != nil {
			return err
		}
		if addr != next.Addr {
			return fmt.Errorf("the sentinels still name %s", addr)
		}
		return isMaster(ctx, addr)
	})
	if err != nil {
		tb.Fatalf("redistest: no failover after killing the master %s: %v", old.Addr, err)
	}
	return next
}

// isMaster checks that the server at addr reports role master.
func isMaster(ctx context.Context, addr string) error {
	return replicationSays(ctx, addr, "role:master", "%s is not a master yet")
}

// poll calls f every 50ms until it returns nil or ctx ends, and then
// returns f's last error.
func poll(ctx context.Context, f func() error) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-t.C:
		}
	}
}
