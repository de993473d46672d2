package outfiles

import (
	"context"
	"io"
	"strconv"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/report"
)

// ChangesCSV is the file of the numbers whose capability changed.
const ChangesCSV = "changes.csv"

// ChangesHeader is the first line of changes.csv.
const ChangesHeader = "row,number,before,after,before_at,after_at\n"

// memory is what a job's results take from the capability memory: the
// numbers it answered (cached), the reasons of remembered rejections, and
// the changes from what it held before the job.
type memory struct {
	reasons map[uint16]capstore.Reason
	changes io.Writer // changes.csv, after its header
	buf     []byte
	total   int64
	byKind  map[string]int64
}

func newMemory(ctx context.Context, s *jobstore.Store, j *jobstore.Job, changes io.Writer) (*memory, error) {
	m := &memory{changes: changes, byKind: map[string]int64{}}
	if j.CachedRejected > 0 {
		r, err := capstore.New(s.Redis(), capstore.Options{}).Reasons(ctx)
		if err != nil {
			return nil, err
		}
		m.reasons = r
	}
	return m, nil
}

// answer is what a sent number's outcome and capability say in the
// memory's terms: zero when they say nothing (failed, no callback, no
// capability columns).
func answer(o *jobstore.Outcome, c capability) capstore.Record {
	switch {
	case o.Status == jobstore.Rejected:
		return capstore.Record{Capability: capstore.Rejected, At: o.Time().Truncate(time.Second)}
	case c.unix == 0:
		return capstore.Record{}
	}
	at := time.Unix(c.unix, 0).UTC()
	switch c.name {
	case "capable":
		return capstore.Record{Capability: capstore.Capable, At: at}
	case "not_capable":
		return capstore.Record{Capability: capstore.NotCapable, At: at}
	case "unknown":
		return capstore.Record{Capability: capstore.Unknown, At: at}
	}
	return capstore.Record{}
}

// change writes a changes.csv line when the memory held an answer for the
// number before the job and the job's answer differs.
func (m *memory) change(e jobstore.Entry, before, after capstore.Record) {
	if before.IsZero() || after.IsZero() || before.Capability == after.Capability {
		return
	}
	m.total++
	m.byKind[before.Capability.String()+" → "+after.Capability.String()]++
	m.buf = strconv.AppendInt(m.buf, e.Row, 10)
	m.buf = append(m.buf, ',')
	m.buf = appendFields(m.buf, []string{e.Number, before.Capability.String(), after.Capability.String(),
		before.At.Format(time.RFC3339), after.At.Format(time.RFC3339)})
	m.buf = append(m.buf, '\n')
}

// flush writes the pending changes.csv lines.
func (m *memory) flush() error {
	if len(m.buf) == 0 {
		return nil
	}
	_, err := m.changes.Write(m.buf)
	m.buf = m.buf[:0]
	return err
}

func (m *memory) report() *report.Changes {
	return &report.Changes{Total: m.total, ByKind: m.byKind}
}

// cachedRow is the results line of a number the memory answered: status
// cached with the remembered capability, or, for a remembered rejection,
// rejected with the API's code and message, checked_at the time of that
// answer; attempts 0 either way (it was not sent).
func (m *memory) cachedRow(c jobstore.CachedNumber) (o jobstore.Outcome, cp capability) {
	k := c.Known
	if k.Capability == capstore.Rejected {
		r := m.reasons[k.Reason]
		return jobstore.Outcome{Status: jobstore.Rejected, Code: r.Code, Message: r.Message, CheckedAt: k.At.UnixMilli()}, capability{}
	}
	return jobstore.Outcome{Status: jobstore.Cached},
		capability{name: k.Capability.String(), at: k.At.Format(time.RFC3339), unix: k.At.Unix()}
}
