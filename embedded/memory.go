package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/memfile"
	"github.com/capcheck/capcheck/outfiles"
)

// memoryName is the capability memory's file in the output folder.
const memoryName = ".capability-memory"

// MemoryPath returns the file of the capability memory that runs on the
// embedded Redis keep under the output folder out.
func MemoryPath(out string) string { return filepath.Join(out, memoryName) }

// OpenMemory maps the capability memory file under out for reading; nil
// (an empty memory) when there is none. Close it when done.
func OpenMemory(out string) (*memfile.File, error) {
	f, err := openExisting(MemoryPath(out))
	if err != nil || f == nil {
		return nil, err
	}
	defer f.Close()
	m, err := memfile.Map(f)
	if errors.Is(err, memfile.ErrCorrupt) {
		return nil, fmt.Errorf("%w (move it away: the runs then remember afresh)", err)
	}
	return m, err
}

// writeMemory writes the memory file under out as the merge of base and
// add: to a temporary file, synced, renamed over the old one, so that a
// crash at any moment leaves the old file or the new one.
func writeMemory(out string, base *memfile.File, add *memfile.Answers, o memfile.MergeOptions) (memfile.MergeStats, error) {
	var st memfile.MergeStats
	err := outfiles.WriteAtomic(MemoryPath(out), func(w io.Writer) error {
		var err error
		st, err = memfile.Merge(w, base, add, o)
		return err
	})
	return st, err
}

// removeTornMemory removes the temporary files of writes of the memory file
// that a crash cut short; the output folder's lock is held.
func removeTornMemory(out string) {
	torn, _ := filepath.Glob(filepath.Join(out, "."+memoryName+".tmp-*"))
	for _, p := range torn {
		_ = os.Remove(p)
	}
}

// Memory is the capability memory of an embedded run: the file that earlier
// runs left, and what this run learned in the embedded Redis (callbacks and
// rejections); of the two answers for a number the newer wins. It is
// enqueue's Memory.
type Memory struct {
	caps *capstore.Store
	mu   sync.RWMutex
	file *memfile.File // replaced when saved
	// asOf, when set (a job restored from an earlier run), hides the
	// answers received since: the job's own, which that run's enqueue did
	// not know when it decided what to send.
	asOf time.Time
}

// Recall sets out[i] to the remembered answer of numbers[i], the zero
// Record when there is none. It reads the embedded Redis as it is at the
// call; [Memory.Snapshot] is the view for an enqueue.
func (m *Memory) Recall(ctx context.Context, numbers []uint64, out []capstore.Record) error {
	return m.recall(ctx, numbers, out, m.caps.Recall)
}

// MemorySnapshot is the memory as an enqueue reads it: the file, and the
// buckets of the embedded Redis each read once, the first time a number of
// it is asked (capstore.Snapshot), not per batch.
type MemorySnapshot struct {
	m    *Memory
	snap *capstore.Snapshot
}

// Snapshot returns a view of the memory for one enqueue.
func (m *Memory) Snapshot() *MemorySnapshot {
	return &MemorySnapshot{m: m, snap: m.caps.Snapshot()}
}

// HoldPrefetch and Prefetch forward to the snapshot of the embedded Redis:
// enqueue holds its background read of every bucket until the first
// chunk's task is out, as with a Redis of its own.
func (s *MemorySnapshot) HoldPrefetch()                { s.snap.HoldPrefetch() }
func (s *MemorySnapshot) Prefetch(ctx context.Context) { s.snap.Prefetch(ctx) }

// enqueue looks for these methods on its memory.
var _ interface {
	HoldPrefetch()
	Prefetch(context.Context)
} = (*MemorySnapshot)(nil)

// Recall is Memory.Recall, reading each bucket of the embedded Redis once.
func (s *MemorySnapshot) Recall(ctx context.Context, numbers []uint64, out []capstore.Record) error {
	return s.m.recall(ctx, numbers, out, s.snap.Recall)
}

func (m *Memory) recall(ctx context.Context, numbers []uint64, out []capstore.Record,
	learn func(context.Context, []uint64, []capstore.Record) error) error {
	m.mu.RLock()
	err := m.file.Recall(ctx, numbers, out)
	m.mu.RUnlock()
	if err != nil {
		return err
	}
	learned := make([]capstore.Record, len(numbers))
	if err := learn(ctx, numbers, learned); err != nil {
		return err
	}
	for i, l := range learned {
		if newer(l, out[i]) {
			out[i] = l
		}
		if !m.asOf.IsZero() && !out[i].At.Before(m.asOf) {
			out[i] = capstore.Record{}
		}
	}
	return nil
}

// newer reports whether the answer learned in this run replaces the one of
// the file: it is as new or newer (received later).
func newer(learned, kept capstore.Record) bool {
	return !learned.IsZero() && (kept.IsZero() || !learned.At.Before(kept.At))
}

// Memory returns the run's capability memory.
func (r *Run) Memory() *Memory { return r.memory }

// openMemory maps the memory file of earlier runs and puts its rejection
// reasons into the embedded Redis, under the references its records carry.
func (r *Run) openMemory(ctx context.Context) error {
	removeTornMemory(r.cfg.Out)
	file, err := OpenMemory(r.cfg.Out)
	if err != nil {
		return err
	}
	caps := capstore.New(r.rdb, capstore.Options{})
	if err := caps.RestoreReasons(ctx, file.Reasons()); err != nil {
		file.Close()
		return err
	}
	r.memory = &Memory{caps: caps, file: file}
	return nil
}

// saveMemory merges what the run learned into the memory file, dropping
// answers older than Config.ForgetAfter. A run that learned nothing leaves
// the file as it is.
func (r *Run) saveMemory(ctx context.Context) error {
	m := r.memory
	var add memfile.Answers
	if err := m.caps.Each(ctx, func(n uint64, rec capstore.Record) error {
		add.Add(n, rec)
		return nil
	}); err != nil {
		return fmt.Errorf("saving the capability memory: %w", err)
	}
	if add.Len() == 0 {
		return nil
	}
	reasons, err := m.caps.Reasons(ctx)
	if err != nil {
		return fmt.Errorf("saving the capability memory: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := writeMemory(r.cfg.Out, m.file, &add, memfile.MergeOptions{Now: time.Now(), ForgetAfter: r.cfg.ForgetAfter, Reasons: reasons})
	if err != nil {
		return fmt.Errorf("saving the capability memory (the file of earlier runs is kept): %w", err)
	}
	r.log.Info("saved the capability memory", "path", MemoryPath(r.cfg.Out), "numbers", st.Numbers,
		"added", st.Added, "replaced", st.Replaced, "forgotten_older_than_forget_after", st.Expired)
	file, err := OpenMemory(r.cfg.Out)
	if err != nil {
		return err
	}
	m.file.Close()
	m.file = file
	return nil
}

// EditMemory rewrites the memory file under out with what o drops (numbers
// to forget, answers older than o.ForgetAfter), holding the output folder
// (a *LockedError while a run works in it).
func EditMemory(out string, o memfile.MergeOptions) (memfile.MergeStats, error) {
	unlock, err := lockDir(out)
	if err != nil {
		return memfile.MergeStats{}, err
	}
	defer unlock()
	removeTornMemory(out)
	base, err := OpenMemory(out)
	if err != nil || base == nil {
		return memfile.MergeStats{}, err
	}
	defer base.Close()
	return writeMemory(out, base, nil, o)
}

// ForgetMemory removes the memory file under out, holding the output
// folder, and returns how many numbers it remembered.
func ForgetMemory(out string) (int, error) {
	unlock, err := lockDir(out)
	if err != nil {
		return 0, err
	}
	defer unlock()
	removeTornMemory(out)
	n := 0
	if base, err := OpenMemory(out); err == nil { // a damaged file is removed all the same
		n = base.Len()
		base.Close()
	}
	if err := os.Remove(MemoryPath(out)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("forgetting every number: %w", err)
	}
	return n, nil
}
