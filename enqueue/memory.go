package enqueue

import (
	"context"
	"errors"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
)

// Memory is the capability memory as enqueue reads it: what was last
// answered for each number. *capstore.Store is the fleet's, in Redis; the
// embedded run has one on disk under --out.
type Memory interface {
	// Recall sets out[i] to the remembered record of numbers[i] (E.164
	// digits as an integer, as capstore keys them), or to the zero Record
	// when there is none. len(out) >= len(numbers). It is called with
	// large batches and from several goroutines at once.
	Recall(ctx context.Context, numbers []uint64, out []capstore.Record) error
}

var (
	_ Memory = (*capstore.Store)(nil)
	_ Memory = (*capstore.Snapshot)(nil)
)

// freshness tells whether a remembered answer is recent enough, for a
// job created at created, not to be sent: received within recheckAfter
// before the job (0: none is) and not older than forgetAfter (0: no
// bound). The job's creation is the clock, so a resumed run decides alike.
// It is a value with a method, not a func: the check is inlined in the
// loop over the rows, with no copy of the record.
type freshness struct {
	never bool
	since int64 // in Unix seconds (records hold whole seconds): newer than this
}

func newFreshness(created time.Time, recheckAfter, forgetAfter time.Duration) freshness {
	if recheckAfter <= 0 {
		return freshness{never: true}
	}
	// Unless forgetAfter is 0, also newer than forgotten (Record.Stale).
	since := created.Add(-recheckAfter).Unix()
	if forgetAfter > 0 {
		since = max(since, created.Add(-forgetAfter).Unix())
	}
	return freshness{since: since}
}

func (f freshness) fresh(r *capstore.Record) bool {
	return !f.never && !r.IsZero() && r.At.Unix() > f.since
}

// decisions are the numbers earlier runs of a job took as answered by the
// memory, read blob by blob as the rows go by (the cached blobs are
// written before their chunk): a resumed run decides as they did for
// every row they covered, whatever the memory holds now.
type decisions struct {
	store *jobstore.Store
	job   string
	next  int // index of the next blob to read
	cur   jobstore.CachedBlob
	pos   int
	have  bool // cur was read
	end   bool // no blob past cur
}

// find reports whether an earlier run decided row (rows come in
// increasing order) and, if so, whether it took the number as cached and
// with which answer.
func (d *decisions) find(ctx context.Context, row int64) (covered bool, known capstore.Record, cached bool, err error) {
	for !d.end && (!d.have || row > d.cur.Through) {
		c, err := d.store.CachedNumbers(ctx, d.job, d.next)
		if errors.Is(err, jobstore.ErrNotFound) {
			d.end = true
			break
		}
		if err != nil {
			return false, capstore.Record{}, false, err
		}
		d.cur, d.pos, d.have = c, 0, true
		d.next++
	}
	if !d.have || row > d.cur.Through {
		return false, capstore.Record{}, false, nil
	}
	ns := d.cur.Numbers
	for d.pos < len(ns) && ns[d.pos].Row < row {
		d.pos++
	}
	if d.pos < len(ns) && ns[d.pos].Row == row {
		return true, ns[d.pos].Known, true, nil
	}
	return true, capstore.Record{}, false, nil
}
