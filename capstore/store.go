package capstore

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// PrefixDefault is the prefix of every key of a Store.
const PrefixDefault = "capcheck"

// Store reads and writes capability records and the awaiting registry. It
// is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	cluster bool

	mu   sync.Mutex
	jobs map[uint32]string // job ordinal -> ID; ordinals are never reused
}

// Options configure a Store.
type Options struct {
	// Prefix starts every key. Tests give each store its own. Defaults to
	// PrefixDefault.
	Prefix string
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, o Options) *Store {
	_, cluster := rdb.(*redis.ClusterClient)
	return &Store{rdb: rdb, prefix: cmp.Or(o.Prefix, PrefixDefault), cluster: cluster, jobs: map[uint32]string{}}
}

// Keys. A bucket b's awaiting hash is await:{tag}:sub, tag = b mod 1024
// and sub = b / 1024, and its memory bucket's records m:{tag}:sub' (memKey:
// a string, sub' = sub mod 16): the hash tag spreads buckets over the
// Cluster's slots, and both keys of a number share its slot.
func (s *Store) awaitKey(b uint32) string {
	return s.prefix + ":await:{" + strconv.Itoa(int(b&(tags-1))) + "}:" + strconv.Itoa(int(b>>tagBits))
}

// The job's keys carry the job ID as hash tag, like the job's record.
func (s *Store) jobCBKey(job string) string  { return s.prefix + ":job:{" + job + "}:cb" }
func (s *Store) jobGotKey(job string) string { return s.prefix + ":job:{" + job + "}:cbgot" }
func (s *Store) jobRawKey(job string) string { return s.prefix + ":job:{" + job + "}:cbraw" }
func (s *Store) ordinalsKey() string         { return s.prefix + ":cbjobs" }
func (s *Store) seqKey() string              { return s.prefix + ":cbseq" }
func (s *Store) statsKey() string            { return s.prefix + ":callbacks" }

// JobKeys returns the keys a job's callbacks use, for the job's expiry.
func (s *Store) JobKeys(job string) []string {
	return []string{s.jobCBKey(job), s.jobGotKey(job), s.jobRawKey(job)}
}

// group is the callbacks (or numbers) of one script call: one hash tag in
// Redis Cluster, everything on a single server.
type group struct {
	keys  []string       // per bucket, a key of each kind asked
	pairs map[uint32]int // bucket -> 1-based index of its keys
	args  []any
	items []int // positions in the caller's slice, in args order
}

// groups splits slots into script calls: per hash tag on a Cluster, one
// call otherwise. Each bucket brings its two keys of kinds (the records
// and the awaiting hash, unless told otherwise); an item's arguments are
// its bucket's index, its field, then what add appends.
func (s *Store) groups(slots []slot, add func(g *group, i int), kinds ...func(uint32) string) []*group {
	if len(kinds) == 0 {
		kinds = []func(uint32) string{s.memKey, s.awaitKey}
	}
	byTag := map[uint32]*group{}
	var out []*group
	for i, sl := range slots {
		t := uint32(0)
		if s.cluster {
			t = sl.tag()
		}
		g := byTag[t]
		if g == nil {
			g = &group{pairs: map[uint32]int{}}
			byTag[t] = g
			out = append(out, g)
		}
		p, ok := g.pairs[sl.bucket]
		if !ok {
			for _, k := range kinds {
				g.keys = append(g.keys, k(sl.bucket))
			}
			p = len(g.keys) / len(kinds)
			g.pairs[sl.bucket] = p
		}
		g.args = append(g.args, p, sl.field)
		g.items = append(g.items, i)
		add(g, i)
	}
	return out
}

// evalFunc runs script once per group and returns each group's replies:
// evalGroups, or a batch's connections' eval (IngestReplicated).
type evalFunc func(ctx context.Context, script *redis.Script, gs []*group) ([][]any, error)

// evalGroups runs script once per group in one pipeline and returns each
// call's reply, in groups order. A server that lost its scripts (a restart,
// a failover) gets them loaded and the calls repeated: every script here
// is idempotent.
func (s *Store) evalGroups(ctx context.Context, script *redis.Script, gs []*group) ([][]any, error) {
	return evalOn(ctx, s.rdb, script, gs, "")
}

// pipeliner is where evalOn runs: the Store's client, or a connection of
// one of its servers (a batch's own, see conns).
type pipeliner interface {
	redis.Scripter
	Pipeline() redis.Pipeliner
}

// evalOn is evalGroups on c. A mark key, when not "", is written after the
// calls in the same pipeline (see conns.eval).
func evalOn(ctx context.Context, c pipeliner, script *redis.Script, gs []*group, mark string) ([][]any, error) {
	for try := 0; ; try++ {
		pipe := c.Pipeline()
		cmds := make([]*redis.Cmd, len(gs))
		for i, g := range gs {
			cmds[i] = script.EvalSha(ctx, pipe, g.keys, g.args...)
		}
		if mark != "" {
			pipe.Set(ctx, mark, 1, markTTL)
		}
		_, err := pipe.Exec(ctx)
		if err != nil && try == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
			if err := script.Load(ctx, c).Err(); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		out := make([][]any, len(gs))
		for i, c := range cmds {
			v, ok := c.Val().([]any)
			if !ok {
				return nil, fmt.Errorf("unexpected script reply %T", c.Val())
			}
			out[i] = v
		}
		return out, nil
	}
}

// Lookup returns the record of each number (a zero Record when there is
// none), in one pipelined round trip per recallBuckets buckets.
func (s *Store) Lookup(ctx context.Context, numbers []uint64) ([]Record, error) {
	out := make([]Record, len(numbers))
	if err := s.Recall(ctx, numbers, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Stats are the receivers' counts of callbacks, fleet-wide, by outcome.
type Stats map[string]int64

// AddStats adds counts to the fleet-wide callback counts.
func (s *Store) AddStats(ctx context.Context, st Stats) error {
	pipe := s.rdb.Pipeline()
	for k, v := range st {
		if v != 0 {
			pipe.HIncrBy(ctx, s.statsKey(), k, v)
		}
	}
	_, err := pipe.Exec(ctx)
	return err
}

// FleetStats returns the fleet-wide callback counts.
func (s *Store) FleetStats(ctx context.Context) (Stats, error) {
	h, err := s.rdb.HGetAll(ctx, s.statsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("reading callback counts: %w", err)
	}
	return parseCounts(h, ""), nil
}

func parseCounts(h map[string]string, prefix string) Stats {
	st := Stats{}
	for k, v := range h {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			st[strings.TrimPrefix(k, prefix)] = n
		}
	}
	return st
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }
