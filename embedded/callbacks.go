package embedded

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
)

// callbacksName is the journal of the callbacks the run's receiver stored,
// in the output folder (a callback names a number, not a job).
const callbacksName = "callbacks.jsonl"

// cbEntry is one line of the callbacks journal.
type cbEntry struct {
	Number     uint64              `json:"n"`
	Capability capstore.Capability `json:"c"`
	Raw        string              `json:"r,omitempty"` // for Unknown
	At         int64               `json:"t"`           // Unix milliseconds
}

// JournalCallbacks appends callbacks stored in the embedded Redis to the
// callbacks journal, synced before it returns: the receiver's OnStored
// hook, so that nothing is acknowledged that a re-run would not know.
func (r *Run) JournalCallbacks(cbs []capstore.Callback) error {
	var b []byte
	for _, cb := range cbs {
		e := cbEntry{Number: cb.Number, Capability: cb.Capability, At: cb.At.UnixMilli()}
		if cb.Capability == capstore.Unknown {
			e.Raw = cb.Raw
		}
		line, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("journaling callbacks: %w", err)
		}
		b = append(append(b, line...), '\n')
	}
	r.cbMu.Lock()
	defer r.cbMu.Unlock()
	if r.cbFile == nil {
		f, err := openNoFollow(filepath.Join(r.cfg.Out, callbacksName), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("journaling callbacks: %w", err)
		}
		if err := trimTornTail(f); err != nil {
			f.Close()
			return fmt.Errorf("journaling callbacks: %s: %w", f.Name(), err)
		}
		r.cbFile = f
	}
	if _, err := r.cbFile.Write(b); err != nil {
		return fmt.Errorf("journaling callbacks: %w", err)
	}
	if err := r.cbFile.Sync(); err != nil {
		return fmt.Errorf("journaling callbacks: %w", err)
	}
	return nil
}

// restoreCallbacks puts back, after job id's outcomes are replayed, what an
// earlier run knew of its callbacks: the job's accepted numbers await their
// callbacks again (from created, when the job began), then the journaled
// callbacks are stored again in the order they came, so the records, the
// job's counts and its duplicates are what they were. It returns the
// callbacks restored.
func (r *Run) restoreCallbacks(ctx context.Context, id string, created time.Time) (int, error) {
	caps := capstore.New(r.rdb, capstore.Options{})
	j, err := r.store.Job(ctx, id)
	if err != nil {
		return 0, err
	}
	if j.CallbackWait > 0 {
		if err := r.awaitAccepted(ctx, caps, j, created); err != nil {
			return 0, err
		}
	}
	f, err := openNoFollow(filepath.Join(r.cfg.Out, callbacksName), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the callbacks journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	var batch []capstore.Callback
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := caps.Ingest(ctx, batch)
		n += len(batch)
		batch = batch[:0]
		return err
	}
	for line := 1; sc.Scan(); line++ {
		var e cbEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // a line cut short by a kill: its callback was not acknowledged
		}
		batch = append(batch, capstore.Callback{Number: e.Number, Capability: e.Capability, Raw: e.Raw, At: time.UnixMilli(e.At)})
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return n, fmt.Errorf("%s line %d: %w", f.Name(), line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	return n, flush()
}

// awaitAccepted registers the numbers of j that the replayed outcomes say
// were accepted as awaited, as the workers did when the API accepted them.
func (r *Run) awaitAccepted(ctx context.Context, caps *capstore.Store, j *jobstore.Job, created time.Time) error {
	ord, err := caps.RegisterJob(ctx, j.ID)
	if err != nil {
		return err
	}
	for i := range j.Chunks {
		outs, err := r.store.Outcomes(ctx, j.ID, i)
		if err != nil {
			return err
		}
		if len(outs) == 0 {
			continue
		}
		entries, err := r.store.Chunk(ctx, j.ID, i)
		if err != nil {
			return err
		}
		var items []capstore.Awaited
		for _, o := range outs {
			if o.Status != jobstore.Accepted || o.Split {
				continue
			}
			for k := o.Lo; k < o.Hi && k < len(entries); k++ {
				n, err := jobstore.NumberToUint(entries[k].Number)
				if err != nil {
					return fmt.Errorf("job %s chunk %d entry %d: number %q: %w", j.ID, i, k, entries[k].Number, err)
				}
				items = append(items, capstore.Awaited{Number: n, Index: uint32(i*j.ChunkSize + k)})
			}
		}
		if err := caps.Await(ctx, j.ID, ord, items, created); err != nil {
			return err
		}
	}
	return nil
}
