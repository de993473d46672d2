package jobstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Chunk groups. What the workers record for a chunk (its outcomes, its
// settled bitmap) and the counts they add (numbers by status, calls, the
// per-second rate and the report's series) live under the hash tag of the
// chunk's group, chunks [g·K, (g+1)·K), not under the job's: on a Redis
// Cluster a job's recorded data spreads over the masters as its input does,
// and each script still touches one slot. A group's counters are a small
// hash; the job's counts are the sum of its groups' (and of the job record's,
// where Add counts calls made outside any chunk), read in one pipeline.
//
// GroupChunks is K for the jobs created now: a 1,000,000-number job in
// chunks of 1,000 has 125 groups, enough that each of three masters gets
// its share within a group or two, few enough that reading the counts stays
// one short pipeline (a 10M-number job: 1,250 HMGETs). A job created before
// groups has none (K = 0): all its keys are in the job's slot, as then.
const GroupChunks = 8

// fGroupChunks is the job record field holding K.
const fGroupChunks = "group_chunks"

// groupTag returns the hash tag of group g of job id, or the job's own tag
// for g < 0 (the job-level keys). Groups are steered to slot bands in
// bit-reversed order, so that the first n groups of any job fall evenly on
// the bands, and on the masters that own them, whatever n is.
func groupTag(id string, g int) string {
	if g < 0 {
		return id
	}
	return bandTag(id+":g"+strconv.Itoa(g), reverseBand(g%spreadBands))
}

// reverseBand reverses the bits of band (0 to spreadBands-1).
func reverseBand(band int) int {
	r := 0
	for b := 1; b < spreadBands; b <<= 1 {
		r <<= 1
		if band&b != 0 {
			r |= 1
		}
	}
	return r
}

// groupKey is the key of group g's counters: a hash of the fields of
// Counters, "started_at" and "gen" (the generation the group's records are
// fenced with; absent is 0). For g < 0 it is the job record.
func groupKey(id string, g int) string { return "capcheck:job:{" + groupTag(id, g) + "}" }

// groupOf returns the group of chunk i for a job of k chunks a group.
func groupOf(i, k int) int {
	if k <= 0 {
		return -1
	}
	return i / k
}

// groups returns how many groups of j may hold records: every chunk's
// group once the count is known, else those of the chunks enqueued and of
// the one being enqueued.
func (j *Job) groups() int {
	if j.GroupChunks <= 0 {
		return 0
	}
	n := j.Chunks
	if n == 0 {
		n = j.ChunksEnqueued + 1
	}
	return (n + j.GroupChunks - 1) / j.GroupChunks
}

// layout is what names a job's keys: K (0 for a job without groups) and t0,
// the second its series' buckets are measured from (its creation; 0 for a
// job without groups, whose series keeps its own t0).
type layout struct {
	k    int
	t0   int64
	read time.Time
}

// layoutTTL bounds how long a layout is trusted without reading it again: a
// job ID can be reused once its job expired.
const layoutTTL = time.Minute

// layouts caches the layout of jobs with groups (a job without groups is
// read each time: it is the rare one).
type layouts struct {
	mu sync.Mutex
	m  map[string]layout
}

// forget drops what is known of job id's layout.
func (c *layouts) forget(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// errNoJob is layoutOf's answer for a job without a record.
var errNoJob = errors.New("no record")

// layoutOf returns job id's layout, errNoJob when it has no record.
func (s *Store) layoutOf(ctx context.Context, id string) (layout, error) {
	s.layouts.mu.Lock()
	l, ok := s.layouts.m[id]
	s.layouts.mu.Unlock()
	if ok && time.Since(l.read) < layoutTTL {
		return l, nil
	}
	v, err := s.rdb.HMGet(ctx, jobKey(id), fGroupChunks, fCreated).Result()
	if err != nil {
		return layout{}, wrap("reading", id, err)
	}
	if v[1] == nil {
		return layout{}, errNoJob
	}
	k, _ := v[0].(string)
	return s.noteLayout(id, k, v[1].(string)), nil
}

// noteLayout returns the layout of job id whose record holds groupChunks
// and created (as stored), and caches it when the job has groups.
func (s *Store) noteLayout(id, groupChunks, created string) layout {
	l := layout{read: time.Now()}
	l.k, _ = strconv.Atoi(groupChunks)
	if l.k > 0 {
		ms, _ := strconv.ParseInt(created, 10, 64)
		l.t0 = ms / 1000
		s.layouts.mu.Lock()
		if len(s.layouts.m) >= 4096 {
			clear(s.layouts.m)
		}
		if s.layouts.m == nil {
			s.layouts.m = map[string]layout{}
		}
		s.layouts.m[id] = l
		s.layouts.mu.Unlock()
	}
	return l
}

// t0Arg is the series' t0 for a script: "" lets the series keep its own.
func (l layout) t0Arg() string {
	if l.k <= 0 {
		return ""
	}
	return strconv.FormatInt(l.t0, 10)
}

// genDefault is the generation a script takes for a counters hash without
// one: a group is created by its first record (0); the record of a job
// without groups always has one.
func (l layout) genDefault() string {
	if l.k <= 0 {
		return ""
	}
	return "0"
}

// counterFields are the fields summed over a job's counters hashes.
var counterFields = [...]string{fAccepted, fRejected, fFailed, fRequests, fRateLimited, fRetries, fStarted}

// addGroups adds to j the counts of its groups.
func (s *Store) addGroups(ctx context.Context, j *Job) error {
	n := j.groups()
	if n == 0 {
		return nil
	}
	p := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, n)
	for g := range n {
		cmds[g] = p.HMGet(ctx, groupKey(j.ID, g), counterFields[:]...)
	}
	if _, err := p.Exec(ctx); err != nil {
		return wrap("reading the counts of", j.ID, err)
	}
	for _, c := range cmds {
		var v [len(counterFields)]int64
		for k, x := range c.Val() {
			if str, ok := x.(string); ok {
				v[k], _ = strconv.ParseInt(str, 10, 64)
			}
		}
		j.Accepted += v[0]
		j.Rejected += v[1]
		j.Failed += v[2]
		j.Requests += v[3]
		j.RateLimited += v[4]
		j.Retries += v[5]
		if v[6] > 0 && (j.StartedAt.IsZero() || v[6] < j.StartedAt.UnixMilli()) {
			j.StartedAt = time.UnixMilli(v[6]).UTC()
		}
	}
	return nil
}

// setGroupsGen sets the generation of each group of j to gen, so that a
// task of an earlier generation records nothing more in any of them.
func (s *Store) setGroupsGen(ctx context.Context, j *Job, gen int) error {
	n := j.groups()
	if n == 0 {
		return nil
	}
	p := s.rdb.Pipeline()
	for g := range n {
		p.HSet(ctx, groupKey(j.ID, g), fGen, gen)
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("re-driving job %s: %w", j.ID, err)
	}
	return nil
}
