package embedded

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/outfiles"
)

// journalName is the file name of a job's journal in its folder.
const journalName = "journal.jsonl"

// maxLine bounds a journal line (an outcome's message is the API's).
const maxLine = 16 << 20

// entry is one line of a journal: a Record (Outcome set) or an Add (Chunk -1).
type entry struct {
	Chunk    int               `json:"chunk"`
	Gen      int               `json:"gen,omitempty"`
	Outcome  *jobstore.Outcome `json:"o,omitempty"`
	Counters jobstore.Counters `json:"c"`
	// At is when it was recorded, in Unix milliseconds.
	At int64 `json:"t"`
	// Limit is the fleet limit the report draws (requests per second).
	Limit float64 `json:"l,omitempty"`
}

// journal appends what the job store records to {out}/{job}/journal.jsonl,
// one JSON line an entry, synced before append returns.
type journal struct {
	out   string
	mu    sync.Mutex
	files map[string]*os.File
}

func newJournal(out string) *journal {
	return &journal{out: out, files: make(map[string]*os.File)}
}

// path returns the journal file of job.
func (j *journal) path(job string) string {
	return filepath.Join(outfiles.Dir(j.out, job), journalName)
}

// append is the job store's OnRecord hook.
func (j *journal) append(job string, r jobstore.Recorded) error {
	e := entry{Chunk: r.Chunk, Gen: r.Gen, Outcome: r.Outcome, Counters: r.Counters, At: r.At.UnixMilli(), Limit: r.Limit}
	if r.Outcome == nil {
		e.Chunk = -1
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journaling: %w", err)
	}
	b = append(b, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	f := j.files[job]
	if f == nil {
		if f, err = j.open(job); err != nil {
			return fmt.Errorf("journaling: %w", err)
		}
		j.files[job] = f
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("journaling: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journaling: %w", err)
	}
	return nil
}

// open opens the journal of job for appending, cutting a last line that a
// crash left without its newline, so the next entry starts a line of its own.
func (j *journal) open(job string) (*os.File, error) {
	if err := os.MkdirAll(outfiles.Dir(j.out, job), 0o755); err != nil {
		return nil, err
	}
	f, err := openNoFollow(j.path(job), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if err := trimTornTail(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return f, nil
}

// trimTornTail truncates f after its last newline, reading from the end.
func trimTornTail(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	end := fi.Size()
	buf := make([]byte, 64<<10)
	for pos := end; pos > 0; {
		n := min(int64(len(buf)), pos)
		pos -= n
		if _, err := f.ReadAt(buf[:n], pos); err != nil {
			return err
		}
		if k := bytes.LastIndexByte(buf[:n], '\n'); k >= 0 {
			if pos+int64(k)+1 == end {
				return nil
			}
			return f.Truncate(pos + int64(k) + 1)
		}
	}
	return f.Truncate(0)
}

// Close closes the journal's files.
func (j *journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var errs []error
	for job, f := range j.files {
		errs = append(errs, f.Close())
		delete(j.files, job)
	}
	return errors.Join(errs...)
}

// replay records again what journal r holds for job, into a Redis that has
// the job's chunks but none of its outcomes (a fresh embedded Redis), each
// at the time it was first recorded; not journaled again. A last line cut
// short by a crash is ignored. Outcomes a re-drive drops
// (jobstore.Outcome.Redriven) are not replayed, so their numbers are sent
// again; their calls still count. The API's rejections are remembered
// again (see rememberRejections). It returns the entries replayed.
func replay(ctx context.Context, rdb redis.UniversalClient, job string, r io.Reader) (int, error) {
	var at time.Time
	store := jobstore.New(rdb, jobstore.WithClock(func() time.Time { return at }))
	j, err := store.Job(ctx, job)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	n := 0
	var bad error
	rejected := map[int][]jobstore.Outcome{}
	for sc.Scan() {
		if bad != nil {
			return n, bad // a bad line followed by more lines is not a torn tail
		}
		var e entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			bad = fmt.Errorf("journal of job %s line %d: %w", job, n+1, err)
			continue
		}
		at = time.UnixMilli(e.At)
		store.SetFleetLimit(e.Limit) // a journal from before limits were journaled has none
		if o := e.Outcome; o != nil && !o.Redriven() {
			err = store.Record(ctx, job, j.Gen, e.Chunk, *o, e.Counters)
			if o.Status == jobstore.Rejected {
				r := *o
				if r.CheckedAt == 0 {
					r.CheckedAt = e.At
				}
				rejected[e.Chunk] = append(rejected[e.Chunk], r)
			}
		} else {
			e.Counters.Failed = 0
			err = store.Add(ctx, job, e.Counters)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, err
	}
	return n, rememberRejections(ctx, rdb, store, job, rejected)
}

// rememberRejections writes the replayed rejections (by chunk) to the
// capability memory of the embedded Redis, as the workers did before
// recording them: a run killed before it saved the memory file would
// otherwise forget them. Each is remembered with the time of its deciding
// call, so newer wins against the file as for any answer.
func rememberRejections(ctx context.Context, rdb redis.UniversalClient, store *jobstore.Store, job string, rejected map[int][]jobstore.Outcome) error {
	var ans []capstore.Answer
	for i, outs := range rejected {
		entries, err := store.Chunk(ctx, job, i)
		if err != nil {
			return err
		}
		for _, o := range outs {
			for k := o.Lo; k < o.Hi && k < len(entries); k++ {
				n, err := jobstore.NumberToUint(entries[k].Number)
				if err != nil {
					return fmt.Errorf("job %s chunk %d entry %d: %w", job, i, k, err)
				}
				ans = append(ans, capstore.Answer{Number: n, Capability: capstore.Rejected, Code: o.Code, Message: o.Message, At: o.Time()})
			}
		}
	}
	caps := capstore.New(rdb, capstore.Options{})
	for len(ans) > 0 { // small script calls: the embedded Redis runs Lua slowly
		k := min(len(ans), 1000)
		if err := caps.Remember(ctx, ans[:k]); err != nil {
			return fmt.Errorf("remembering the journal's rejections: %w", err)
		}
		ans = ans[k:]
	}
	return nil
}
