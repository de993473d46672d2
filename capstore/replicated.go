package capstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated is the error of [Store.IngestReplicated] when a master
// with replicas did not have the batch's writes confirmed by any of them
// in time.
var ErrNotReplicated = errors.New("no replica confirmed the writes in time")

// Replicas returns how many replicas each master has online (INFO
// replication: connected and past their first sync, which may take minutes
// and confirms nothing meanwhile): by address on a Cluster, under "" on a
// single server or Sentinel's master. The embedded Redis, which has no
// INFO replication, counts as having none; any other error is returned.
func (s *Store) Replicas(ctx context.Context) (map[string]int, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		n, err := connectedReplicas(ctx, s.rdb)
		if err != nil {
			return nil, err
		}
		return map[string]int{"": n}, nil
	}
	var mu sync.Mutex
	out := map[string]int{}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := connectedReplicas(ctx, c)
		if err != nil {
			return err
		}
		mu.Lock()
		out[c.Options().Addr] = n
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// embeddedRefusal is the embedded Redis's answer to INFO replication.
// Only it means "no replicas": any other error (NOPERM for a user without
// @dangerous, LOADING, BUSY) says nothing of the replicas.
const embeddedRefusal = "section (replication) is not supported"

func connectedReplicas(ctx context.Context, c redis.Cmdable) (int, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil && err.Error() == embeddedRefusal {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading replication info: %w", err)
	}
	n := 0
	for line := range strings.Lines(info) {
		// slave0:ip=10.0.0.2,port=6379,state=online,offset=...,lag=0
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if strings.HasPrefix(k, "slave") && strings.Contains(","+v+",", ",state=online,") {
			n++
		}
	}
	return n, nil
}

// Replication says what [Store.IngestReplicated] waits for.
type Replication struct {
	// Replicas is how many replicas each master has, as [Store.Replicas]
	// gives them: a master with none is not waited for, one not listed (a
	// master since) is.
	Replicas map[string]int
	// Timeout bounds the wait for a replica's confirmation.
	Timeout time.Duration
}

// IngestReplicated is Ingest that returns only once every master written
// to that has replicas has the batch's writes confirmed by one of them
// (WAIT 1): a callback acknowledged then survives the master's loss and a
// replica's promotion, where Redis's asynchronous replication may lose
// what the master alone had. When no replica confirms in time it fails
// with ErrNotReplicated; the writes are on the master all the same, and
// ingesting the batch again is harmless (its callbacks are duplicates).
//
// The batch's writes and each master's WAIT go on one connection of the
// batch's own per master: WAIT covers the writes of its connection, and a
// connection broken by a master's loss fails the batch at once rather than
// letting another master confirm it. Each pipeline of the batch on a
// master ends with a write of its own (a mark key, see markKey): WAIT
// covers the connection's last write only (Redis 7.2 and later, Valkey),
// and a batch that wrote nothing there (its callbacks duplicates of
// records another connection wrote) would otherwise be confirmed at once.
// On a Cluster, a slot that moved (MOVED, ASK) fails the batch too, and
// the slots are read again for the next one.
//
// The wait ends by ctx's deadline, if sooner than r.Timeout, and so does
// the call when ctx ends while the batch's connections are blocked (a
// master frozen or cut off): go-redis does not end a command by its
// context, and reads a blocked WAIT for 10 s past WAIT's timeout. Such a
// batch's connections are left to their command, returned to the pool
// when it ends.
func (s *Store) IngestReplicated(ctx context.Context, cbs []Callback, r Replication) ([]Result, error) {
	var (
		gres    []Result // the goroutine's, read once done is closed
		gerr    error
		waiting atomic.Bool
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		cs := &conns{s: s, by: map[string]*redis.Conn{}, marks: map[string]string{}}
		defer cs.close()
		if gres, gerr = s.ingest(ctx, cs.eval, cbs); gerr != nil {
			return
		}
		timeout := r.Timeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(dl))
		}
		waiting.Store(true)
		gerr = cs.wait(ctx, r.Replicas, max(timeout, time.Millisecond)) // WAIT's 0 is for ever
	}()
	var res []Result
	var err error
	select {
	case <-done:
		res, err = gres, gerr
	case <-ctx.Done():
		select {
		case <-done: // ended with ctx: its own error says more
			res, err = gres, gerr
		case <-time.After(ctxGrace):
			if waiting.Load() {
				err = fmt.Errorf("%w: %w", ErrNotReplicated, context.Cause(ctx))
			} else {
				err = fmt.Errorf("writing the batch: %w", context.Cause(ctx))
			}
		}
	}
	if err != nil {
		if cc, ok := s.rdb.(*redis.ClusterClient); ok {
			cc.ReloadState(ctx)
		}
		return nil, err
	}
	return res, nil
}

// ctxGrace is how long IngestReplicated waits, once ctx ended, for the
// batch's commands to end by themselves (a WAIT whose timeout was ctx's
// deadline answers just after it).
const ctxGrace = 50 * time.Millisecond

// conns holds a batch's connections, one per master it writes to.
type conns struct {
	s     *Store
	by    map[string]*redis.Conn // master address ("" off Cluster) -> connection
	marks map[string]string      // master address -> its mark key
}

// markTTL is how long a mark key lives: keys of the hash tags written in
// the last few seconds, no more.
const markTTL = 10 * time.Second

// markKey is the key a batch writes on a master, with the hash tag of key
// (a key of the batch's on that master), so that on a Cluster it is on the
// same master; one key in all off Cluster.
func (s *Store) markKey(key string) string {
	if !s.cluster {
		return s.prefix + ":replmark"
	}
	tag := key // a key without a hash tag is hashed whole
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			tag = key[i+1 : i+1+j]
		}
	}
	return s.prefix + ":replmark:{" + tag + "}"
}

// eval is evalGroups on cs's connections: each group on its master's, the
// masters' pipelines at once.
func (cs *conns) eval(ctx context.Context, script *redis.Script, gs []*group) ([][]any, error) {
	byAddr := map[string][]int{}
	var addrs []string
	for i, g := range gs {
		addr, err := cs.open(ctx, g.keys[0])
		if err != nil {
			return nil, err
		}
		if _, ok := byAddr[addr]; !ok {
			addrs = append(addrs, addr)
			if _, ok := cs.marks[addr]; !ok {
				cs.marks[addr] = cs.s.markKey(g.keys[0])
			}
		}
		byAddr[addr] = append(byAddr[addr], i)
	}
	out := make([][]any, len(gs))
	errs := make([]error, len(addrs))
	run := func(k int) {
		idx := byAddr[addrs[k]]
		sub := make([]*group, len(idx))
		for j, i := range idx {
			sub[j] = gs[i]
		}
		r, err := evalOn(ctx, cs.by[addrs[k]], script, sub, cs.marks[addrs[k]])
		if err != nil {
			errs[k] = err
			return
		}
		for j, i := range idx {
			out[i] = r[j]
		}
	}
	if len(addrs) == 1 {
		run(0)
	} else {
		var wg sync.WaitGroup
		for k := range addrs {
			wg.Go(func() { run(k) })
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// open makes sure cs has a connection to the master of key and returns the
// master's address.
func (cs *conns) open(ctx context.Context, key string) (string, error) {
	var c *redis.Client
	addr := ""
	switch r := cs.s.rdb.(type) {
	case *redis.ClusterClient:
		n, err := r.MasterForKey(ctx, key)
		if err != nil {
			return "", err
		}
		c, addr = n, n.Options().Addr
	case *redis.Client:
		c = r
	default:
		return "", fmt.Errorf("waiting for replicas on a %T", r)
	}
	if _, ok := cs.by[addr]; !ok {
		cs.by[addr] = c.Conn()
	}
	return addr, nil
}

// wait has each master written to that has replicas confirm the writes of
// its connection on one of them, the masters at once.
func (cs *conns) wait(ctx context.Context, replicas map[string]int, timeout time.Duration) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for addr, c := range cs.by {
		if n, ok := replicas[addr]; ok && n == 0 {
			continue
		}
		wg.Go(func() {
			name := cmp.Or(addr, "the master")
			n, err := c.Wait(ctx, 1, timeout).Result()
			switch {
			case err != nil:
				err = fmt.Errorf("waiting for a replica of %s: %w", name, err)
			case n < 1:
				err = fmt.Errorf("%s: %w (%v)", name, ErrNotReplicated, timeout)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (cs *conns) close() {
	for _, c := range cs.by {
		_ = c.Close()
	}
}
