// Package outfiles writes a job's output files — results.csv, rejects.csv and
// summary.json — from what the job store recorded. It streams chunk by chunk,
// so a job of tens of millions of numbers is never held in memory, and each
// file appears complete or not at all (written to a temporary name, then
// renamed).
package outfiles

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/report"
)

// DirDefault is the folder under which each job's files are written,
// {DirDefault}/{job}/, when none is configured.
const DirDefault = "./out"

// File names in {out}/{job}/.
const (
	ResultsCSV   = "results.csv"
	ResultsJSONL = "results.jsonl"
	RejectsCSV   = "rejects.csv"
	SummaryJSON  = "summary.json"
)

// Format is the format of the results file.
type Format string

// Formats of the results file.
const (
	CSV   Format = "csv"   // results.csv, the README's columns
	JSONL Format = "jsonl" // results.jsonl: one JSON object per line, same fields
)

// ResultsHeader is the header of results.csv.
var ResultsHeader = []string{"row", "input", "number", "status", "code", "message", "attempts", "checked_at",
	"capability", "capability_at"}

// RejectsHeader is the first line of rejects.csv.
const RejectsHeader = "row,input,reason\n"

// Dir returns the output folder of a job.
func Dir(outDir, jobID string) string { return filepath.Join(outDir, jobID) }

// Write writes results.csv, rejects.csv and summary.json of a job whose
// chunks are all settled, and returns the summary.
func Write(ctx context.Context, s *jobstore.Store, jobID, outDir string) (*Summary, error) {
	return Export(ctx, s, jobID, outDir, CSV)
}

// Export is Write with a choice of results format.
func Export(ctx context.Context, s *jobstore.Store, jobID, outDir string, format Format) (*Summary, error) {
	// The ID names a folder under outDir: never one outside it.
	if err := jobstore.ValidateJobID(jobID); err != nil {
		return nil, err
	}
	j, err := s.Job(ctx, jobID)
	if err != nil {
		return nil, err
	}
	dir := Dir(outDir, jobID)
	if err := mkdir(dir); err != nil {
		return nil, err
	}
	removeDeadTemps(dir, ".") // every output's, as a job's files are written
	sum := newSummary(j)
	sum.tally = report.NewTally()
	name := ResultsCSV
	if format == JSONL {
		name = ResultsJSONL
	}
	var mem *memory
	// changes.csv is written along with the results, from the same reads.
	err = WriteAtomic(filepath.Join(dir, ChangesCSV), func(cw io.Writer) error {
		if _, err := io.WriteString(cw, ChangesHeader); err != nil {
			return err
		}
		var err error
		if mem, err = newMemory(ctx, s, j, cw); err != nil {
			return err
		}
		return WriteAtomic(filepath.Join(dir, name), func(w io.Writer) error {
			return writeResults(ctx, s, j, w, format, sum, mem)
		})
	})
	if err != nil {
		return nil, err
	}
	sum.Changes = mem.total
	if err := s.SetChanges(ctx, j.ID, mem.total); err != nil {
		return nil, err
	}
	if err := WriteAtomic(filepath.Join(dir, RejectsCSV), func(w io.Writer) error {
		return writeRejects(ctx, s, j, w)
	}); err != nil {
		return nil, err
	}
	sum.finish(j)
	if j.CallbackWait > 0 {
		jc, err := capstore.New(s.Redis(), capstore.Options{}).JobCounts(ctx, j.ID)
		if err != nil {
			return nil, err
		}
		sum.Callbacks = &jc
	}
	if err := WriteAtomic(filepath.Join(dir, SummaryJSON), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}); err != nil {
		return nil, err
	}
	nums := sum.tally.Numbers(startOf(j))
	nums.Changes = mem.report()
	if err := keepReport(ctx, s, j, dir, nums); err != nil {
		return nil, err
	}
	return sum, nil
}

func mkdir(dir string) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("creating output folder: %w", err)
	}
	return nil
}

// CheckWritable creates dir if it is missing and checks that files can be
// written in it (one is created and removed), so that a writer learns at
// start, not when a job's files are due, that it cannot write them.
func CheckWritable(dir string) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return err
	}
	f, err := createTemp(dir, ".capcheck-write-check.tmp-")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// ErrUnsettled is returned when a job still has numbers without a final status.
var ErrUnsettled = errors.New("job has numbers without a final status")

// resultJSON is one line of results.jsonl.
type resultJSON struct {
	Row       int64  `json:"row"`
	Input     string `json:"input"`
	Number    string `json:"number"`
	Status    string `json:"status"`
	Code      string `json:"code,omitempty"`
	Message   string `json:"message,omitempty"`
	Attempts  int    `json:"attempts"`
	CheckedAt string `json:"checked_at,omitempty"`

	Capability   string `json:"capability,omitempty"`
	CapabilityAt string `json:"capability_at,omitempty"`
}

// writeResults writes the results of j to w in row order, counting each
// line in sum and its change in mem. prepN goroutines prepare the
// chunks, chunk i on goroutine i mod their number: each reads its chunks
// from Redis, settles them and formats their lines; this one counts the
// lines in row order (the report's samples depend on it) and writes them.
func writeResults(ctx context.Context, s *jobstore.Store, j *jobstore.Job, w io.Writer, format Format, sum *Summary, mem *memory) error {
	if format == CSV {
		if _, err := w.Write(appendRecord(nil, ResultsHeader)); err != nil {
			return err
		}
	}
	p := &preparer{s: s, j: j, caps: newCapabilities(s, j), mem: mem, format: format}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	n := prepN
	outs := make([]chan *chunkData, n)
	p.free = make(chan []byte, 2*n)
	for k := range outs {
		outs[k] = make(chan *chunkData, 1)
		wg.Add(1)
		go func() { defer wg.Done(); p.run(ctx, k, n, outs[k]) }()
	}
	for i := range j.Chunks + 1 {
		c, ok := <-outs[i%n]
		if !ok {
			return context.Cause(ctx)
		}
		if c.err != nil {
			return c.err
		}
		_ = c.each(func(e *jobstore.Entry, o *jobstore.Outcome, cp capability, k int) error {
			if k < 0 {
				sum.cached(*o)
			}
			sum.add(e.Number, *o, cp)
			if k >= 0 {
				var before capstore.Record
				if c.before != nil {
					before = c.before[k]
				}
				mem.change(*e, before, answer(o, cp))
			}
			return nil
		})
		if err := mem.flush(); err != nil {
			return err
		}
		if _, err := w.Write(c.text); err != nil {
			return err
		}
		select {
		case p.free <- c.text[:0]:
		default:
		}
	}
	return nil
}

// prepN is how many goroutines prepare the chunks of the results: reading
// a chunk is a Redis round trip, which several in flight hide.
const prepN = 4

// chunkData is a chunk read from Redis and prepared for writing: its
// entries, its outcomes and the one that settled each entry, their
// capabilities (nil: none), what the memory held of its numbers before the
// job (nil: nothing), the numbers the memory answered that come
// before its end with their lines' outcomes, and its lines formatted. The
// last one (i == Chunks) is only the numbers answered after the last chunk.
type chunkData struct {
	i       int
	entries []jobstore.Entry
	outs    []jobstore.Outcome
	by      []int32
	caps    []capability
	before  []capstore.Record
	cached  []jobstore.CachedNumber
	cachedO []jobstore.Outcome
	cachedC []capability
	text    []byte
	err     error
}

// each calls fn with each line of c in row order: the numbers the memory
// answered (k < 0) among the chunk's entries (k their index). It stops at
// fn's first error.
func (c *chunkData) each(fn func(e *jobstore.Entry, o *jobstore.Outcome, cp capability, k int) error) error {
	m := 0
	cachedBefore := func(row int64) error {
		for ; m < len(c.cached) && c.cached[m].Row < row; m++ {
			if err := fn(&c.cached[m].Entry, &c.cachedO[m], c.cachedC[m], -1); err != nil {
				return err
			}
		}
		return nil
	}
	for k := range c.entries {
		e := &c.entries[k]
		if err := cachedBefore(e.Row); err != nil {
			return err
		}
		var cp capability
		if c.caps != nil {
			cp = c.caps[k]
		}
		if err := fn(e, &c.outs[c.by[k]], cp, k); err != nil {
			return err
		}
	}
	return cachedBefore(math.MaxInt64)
}

// preparer reads and prepares the chunks of a job's results.
type preparer struct {
	s      *jobstore.Store
	j      *jobstore.Job
	caps   *capabilities
	mem    *memory // only its cachedRow, which reads
	format Format
	free   chan []byte // buffers of lines written, for reuse
}

// run prepares chunks first, first+step, ... in order and sends them on
// out, then closes it; it stops after the first error (sent too) or when
// ctx ends.
func (p *preparer) run(ctx context.Context, first, step int, out chan<- *chunkData) {
	defer close(out)
	rw := &rowWriter{}
	for i := first; i <= p.j.Chunks; i += step {
		c := &chunkData{i: i}
		select {
		case c.text = <-p.free:
		default:
		}
		c.err = p.prepare(ctx, c, rw)
		select {
		case out <- c:
		case <-ctx.Done():
			return
		}
		if c.err != nil {
			return
		}
	}
}

func (p *preparer) prepare(ctx context.Context, c *chunkData, rw *rowWriter) error {
	j := p.j
	r, err := p.s.ReadChunk(ctx, j.ID, c.i, j.Chunks, j.Cached > 0)
	if err != nil {
		return err
	}
	if c.i < j.Chunks {
		by, all := jobstore.SettledBy(len(r.Entries), r.Outcomes)
		if !all {
			return fmt.Errorf("job %s chunk %d: %w", j.ID, c.i, ErrUnsettled)
		}
		if c.caps, err = p.caps.chunk(ctx, r.Entries, r.Outcomes, by); err != nil {
			return err
		}
		c.entries, c.outs, c.by, c.before = r.Entries, r.Outcomes, by, r.Before
	}
	if j.Cached > 0 {
		c.cached = r.Cached.Numbers
		c.cachedO = make([]jobstore.Outcome, len(c.cached))
		c.cachedC = make([]capability, len(c.cached))
		for k := range c.cached {
			c.cachedO[k], c.cachedC[k] = p.mem.cachedRow(c.cached[k])
		}
	}
	if p.format == CSV {
		rw.buf = c.text
		_ = c.each(func(e *jobstore.Entry, o *jobstore.Outcome, cp capability, _ int) error {
			rw.row(*e, o, cp)
			return nil
		})
		c.text, rw.buf = rw.buf, nil
		return nil
	}
	b := bytes.NewBuffer(c.text)
	enc := json.NewEncoder(b)
	err = c.each(func(e *jobstore.Entry, o *jobstore.Outcome, cp capability, _ int) error {
		checked := ""
		if t := o.Time(); !t.IsZero() {
			checked = t.Format(time.RFC3339Nano)
		}
		return enc.Encode(resultJSON{e.Row, e.Input, e.Number, string(o.Status), o.Code, o.Message, o.Attempts, checked, cp.name, cp.at})
	})
	c.text = b.Bytes()
	return err
}

// rowWriter formats results.csv rows as encoding/csv would, fast: the
// columns an outcome decides (status to checked_at) are formatted once per
// outcome, not once per number.
type rowWriter struct {
	buf    []byte
	have   bool             // suffix holds last's columns
	last   jobstore.Outcome // the outcome suffix was made for
	suffix []byte           // ",status,code,message,attempts,checked_at"
}

func (rw *rowWriter) row(e jobstore.Entry, o *jobstore.Outcome, c capability) {
	rw.buf = strconv.AppendInt(rw.buf, e.Row, 10)
	rw.buf = append(rw.buf, ',')
	rw.buf = appendField(rw.buf, Cell(e.Input))
	rw.buf = append(rw.buf, ',')
	rw.buf = appendField(rw.buf, e.Number)
	if !rw.have || rw.last != *o {
		checked := ""
		if t := o.Time(); !t.IsZero() {
			checked = t.Format(time.RFC3339Nano)
		}
		rw.suffix = append(rw.suffix[:0], ',')
		rw.suffix = appendFields(rw.suffix, []string{string(o.Status), Cell(o.Code), Cell(o.Message), strconv.Itoa(o.Attempts), checked})
		rw.have, rw.last = true, *o
	}
	rw.buf = append(rw.buf, rw.suffix...)
	rw.buf = append(rw.buf, ',')
	rw.buf = appendField(rw.buf, c.name)
	rw.buf = append(rw.buf, ',')
	rw.buf = appendField(rw.buf, c.at)
	rw.buf = append(rw.buf, '\n')
}

// appendRecord appends fields as one CSV line, as csv.Writer writes them.
func appendRecord(b []byte, fields []string) []byte {
	return append(appendFields(b, fields), '\n')
}

// appendFields appends fields separated by commas, as csv.Writer does.
func appendFields(b []byte, fields []string) []byte {
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendField(b, f)
	}
	return b
}

// appendField appends f as csv.Writer (comma ',', no CRLF) writes a field:
// quoted, with quotes doubled, when it holds a comma, a quote, a CR or an
// LF, begins with a space, or is `\.`.
func appendField(b []byte, f string) []byte {
	if !fieldNeedsQuotes(f) {
		return append(b, f...)
	}
	b = append(b, '"')
	for i := 0; i < len(f); i++ {
		if f[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, f[i])
	}
	return append(b, '"')
}

// fieldNeedsQuotes is encoding/csv's rule for a comma of ','.
func fieldNeedsQuotes(f string) bool {
	if f == "" {
		return false
	}
	if f == `\.` {
		return true
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '\n', '\r', '"', ',':
			return true
		}
	}
	r, _ := utf8.DecodeRuneInString(f)
	return unicode.IsSpace(r)
}

func writeRejects(ctx context.Context, s *jobstore.Store, j *jobstore.Job, w io.Writer) error {
	if _, err := io.WriteString(w, RejectsHeader); err != nil {
		return err
	}
	return s.Rejects(ctx, j.ID, j.RejectBlobs, func(b []byte) error {
		_, err := w.Write(b)
		return err
	})
}

// createTemp creates a new file named prefix and a random suffix in dir,
// with FileMode less the umask (os.CreateTemp's files are 0600 whatever the
// umask). O_EXCL: never a file or a link that is there already. The file is
// locked (flock) until it is closed where the file system allows it; where it
// does not (NFS without lockd, in the server's grace period), it is written
// unlocked: removeDeadTemps' age floor keeps it safe.
func createTemp(dir, prefix string) (*os.File, error) {
	for range 100 {
		name := filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, FileMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		return f, nil
	}
	return nil, fmt.Errorf("creating a temporary file in %s: too many exist", dir)
}

// deadTempAge is how old a temporary file must be for removeDeadTemps: no
// write of these files takes that long, and a live writer's file is being
// written, so its mtime is fresh. Locks alone cannot tell: on NFS mounted
// nolock or local_lock, flock is per host.
const deadTempAge = time.Hour

// removeDeadTemps removes the temporary files (prefix*.tmp-*) in dir that
// writers killed before their rename left: only those older than
// deadTempAge, and of those only ones it can lock (a live writer holds its
// lock). A lock that fails for any other reason keeps the file.
func removeDeadTemps(dir, prefix string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) || !strings.Contains(e.Name(), ".tmp-") {
			continue
		}
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < deadTempAge {
			continue
		}
		name := filepath.Join(dir, e.Name())
		// O_RDWR: NFS emulates flock with fcntl write locks. O_NONBLOCK:
		// a FIFO put in its place does not block.
		f, err := os.OpenFile(name, os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) >= deadTempAge &&
			syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			_ = os.Remove(name) // under the lock: no writer can have it
		}
		f.Close()
	}
}

// Cell returns a CSV cell of free text (an input as it was written, a
// provider's code or message, a reason) so that a spreadsheet shows it as
// text instead of running it as a formula: one that begins with '=', '@', a
// tab or a carriage return, or with '+' or '-' followed by anything but a
// phone number's characters (digits, spaces, dots, dashes and brackets), gets
// a leading apostrophe. "+91 98765 43210" and "-5" stay as they are.
func Cell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '@', '\t', '\r':
		return "'" + s
	case '+', '-':
		if !phoneChars(s[1:]) {
			return "'" + s
		}
	}
	return s
}

// phoneChars reports whether s has a digit and nothing a formula could call
// or refer to: digits, spaces, dots, dashes and brackets only.
func phoneChars(s string) bool {
	digit := false
	for _, c := range []byte(s) {
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c == ' ' || c == '.' || c == '-' || c == '(' || c == ')':
		default:
			return false
		}
	}
	return digit
}

// FileMode and DirMode are the modes output files and folders are created
// with, less the process's umask: the files hold phone numbers, and who may
// read them is the operator's choice (umask 077 keeps them to the owner).
const (
	FileMode os.FileMode = 0o666
	DirMode  os.FileMode = 0o777
)

// WriteAtomic writes path through fill: to a temporary file in the same
// folder, synced, then renamed over path, so readers see the old file or the
// complete new one and never a part. The file's mode is FileMode less the
// umask.
func WriteAtomic(path string, fill func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	f, err := createTemp(dir, "."+base+".tmp-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	sw := &syncingWriter{w: f, sync: f.Sync}
	defer func() {
		if err != nil {
			_ = sw.wait()
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(sw, 256<<10)
	if err := fill(bw); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := sw.wait(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// Renamed before it is closed: closing ends the lock that keeps
	// removeDeadTemps away from it.
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable
		_ = d.Sync()
		d.Close()
	}
	// What a writer of this file killed before its rename left.
	removeDeadTemps(dir, "."+base+".tmp-")
	return nil
}

// syncEvery is how much of a file WriteAtomic writes between the syncs it
// starts in the background: the fsync before the rename then waits for the
// last part only. On the benchmark host an fsync at the end of the
// results of 90,000 numbers (8 MB) took 15 – 50 ms, about 0.1 ms with
// these.
const syncEvery = 1 << 20

// syncingWriter writes to a file and, each syncEvery bytes, starts an
// fsync of it in the background unless one is running. An fsync's failure is kept
// and returned by the next Write or by wait: Linux reports a writeback
// error once, so the fsync at the end could succeed after it.
type syncingWriter struct {
	w       io.Writer // the file
	sync    func() error
	pending int64      // bytes written since the last fsync started
	done    chan error // the fsync running, nil when none
	err     error      // the first fsync's failure
}

func (w *syncingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.pending += int64(n)
	if w.pending >= syncEvery {
		select {
		case e := <-w.done: // nil channel: none running
			w.ended(e)
		default:
		}
		if w.done == nil && w.err == nil {
			w.pending = 0
			done := make(chan error, 1)
			w.done = done
			go func() { done <- w.sync() }()
		}
	}
	if err == nil {
		err = w.err
	}
	return n, err
}

// wait waits for the fsync running, if any, and returns the first failure.
func (w *syncingWriter) wait() error {
	if w.done != nil {
		w.ended(<-w.done)
	}
	return w.err
}

func (w *syncingWriter) ended(err error) {
	w.done = nil
	if w.err == nil && err != nil {
		w.err = fmt.Errorf("syncing: %w", err)
	}
}
