package jobstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// WithReplicaWait makes the store wait, for up to timeout, until a replica
// holds a write that another write elsewhere will take for granted: a chunk
// blob before its task is enqueued (asynq's queue may live on another master
// of a Redis Cluster), a chunk's done mark before asynq is told the task is
// done. Without it a failover that loses the master's last writes could keep
// the task's ack and lose what it stands for: a chunk no worker can read, or
// one that is never run again, so the job would never finish. It costs one
// round trip to a replica per chunk. A replica that does not answer in time
// does not fail the write. Use it with replicas (Sentinel, Cluster); on a lone
// server it would only wait for nothing. Defaults to 0 (no wait).
func WithReplicaWait(timeout time.Duration) Option {
	return func(s *Store) { s.replicaWait = timeout }
}

// replicated runs write's commands on the connection of key's master,
// followed by WAIT 1 (WAIT only covers the writes of its own connection). It
// returns an error when the pipeline did not run there (a node down, a slot
// moved): the caller then writes the usual way, which rides through a
// failover, without the wait.
func (s *Store) replicated(ctx context.Context, key string, write func(p redis.Pipeliner)) error {
	var p redis.Pipeliner
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return err
		}
		p = node.Pipeline()
	} else {
		p = s.rdb.Pipeline()
	}
	write(p)
	p.Do(ctx, "wait", 1, s.replicaWait.Milliseconds())
	_, err := p.Exec(ctx)
	return err
}

// runReplicated runs script on keys and, with WithReplicaWait, waits for a
// replica as replicated does (without it when that fails, as there).
func (s *Store) runReplicated(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	var cmd *redis.Cmd
	if s.replicaWait > 0 && s.replicated(ctx, keys[0], func(p redis.Pipeliner) {
		cmd = script.Eval(ctx, p, keys, args...)
	}) == nil {
		return cmd
	}
	return script.Run(ctx, s.rdb, keys, args...)
}
