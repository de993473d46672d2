package jobstore

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
)

// Journal keeps a copy of what the store records somewhere that outlives
// Redis. capcheck run on its embedded Redis uses it: that Redis dies with the
// process, and a re-run replays the journal so recorded calls are not sent
// again.
type Journal interface {
	Append(job string, e JournalEntry) error
}

// JournalEntry is one Record (Outcome set) or Add (Chunk -1) of the store.
type JournalEntry struct {
	Chunk    int      `json:"chunk"`
	Gen      int      `json:"gen,omitempty"`
	Outcome  *Outcome `json:"o,omitempty"`
	Counters Counters `json:"c"`
	// At is when it was recorded, in Unix milliseconds.
	At int64 `json:"t"`
}

// SetJournal makes the store append every Record and Add to j, after Redis
// took it. Call it before the store is shared.
func (s *Store) SetJournal(j Journal) { s.journal = j }

func (s *Store) journalAppend(job string, e JournalEntry) error {
	if s.journal == nil {
		return nil
	}
	if err := s.journal.Append(job, e); err != nil {
		return fmt.Errorf("journaling job %s: %w", job, err)
	}
	return nil
}

// Replay records again what a journal holds for job, into a store that has
// the job's chunks but none of its outcomes (a fresh embedded Redis). A last
// line cut short by a crash is ignored. Numbers that ended failed (and the
// bisection markers, whose attempts no longer count) are not replayed, so the
// re-run sends them again, as `capcheck retry` would; their calls still count.
// It returns the entries replayed.
func (s *Store) Replay(ctx context.Context, job string, r io.Reader) (int, error) {
	j, err := s.Job(ctx, job)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	var bad error
	for sc.Scan() {
		if bad != nil {
			return n, bad // a bad line followed by more lines is not a torn tail
		}
		var e JournalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			bad = fmt.Errorf("journal of job %s line %d: %w", job, n+1, err)
			continue
		}
		at := time.UnixMilli(e.At)
		var err error
		if o := e.Outcome; o != nil && !o.Split && o.Status != Failed {
			err = s.record(ctx, job, j.Gen, e.Chunk, *o, e.Counters, at)
		} else {
			e.Counters.Failed = 0
			err = s.add(ctx, job, e.Counters, at)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, sc.Err()
}

// FileJournal is a Journal in files {dir}/{job}/journal.jsonl, one JSON line
// per entry, synced before Append returns.
type FileJournal struct {
	dir   string
	mu    sync.Mutex
	files map[string]*os.File
}

// JournalName is the file name of a job's journal in its output folder.
const JournalName = "journal.jsonl"

// NewFileJournal returns a journal under dir (capcheck's output folder).
func NewFileJournal(dir string) *FileJournal {
	return &FileJournal{dir: dir, files: make(map[string]*os.File)}
}

// Path returns the journal file of job.
func (j *FileJournal) Path(job string) string { return filepath.Join(j.dir, job, JournalName) }

// Append implements Journal.
func (j *FileJournal) Append(job string, e JournalEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	f := j.files[job]
	if f == nil {
		if err := os.MkdirAll(filepath.Join(j.dir, job), 0o755); err != nil {
			return err
		}
		if err := trimTornTail(j.Path(job)); err != nil {
			return err
		}
		f, err = os.OpenFile(j.Path(job), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		j.files[job] = f
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Sync()
}

// Close closes the journal's files.
func (j *FileJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var errs []error
	for job, f := range j.files {
		errs = append(errs, f.Close())
		delete(j.files, job)
	}
	return errors.Join(errs...)
}

// trimTornTail cuts a last line left without its newline by a crash, so that
// the next entry starts on a line of its own.
func trimTornTail(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || len(b) == 0 || b[len(b)-1] == '\n' {
		return nil
	}
	if err != nil {
		return err
	}
	return os.Truncate(path, int64(bytes.LastIndexByte(b, '\n')+1))
}
