package enqueue

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/listreader"
	"github.com/capcheck/capcheck/phonenorm"
)

// ChunkSizeDefault is how many numbers go in one chunk task.
const ChunkSizeDefault = 1000

// minStartRows bounds below the rows in flight before the first chunk is
// out (see Process).
const minStartRows = 256

// BatchSizeDefault is how many records a normalizing worker takes at once:
// big enough that handing batches around costs nothing next to parsing.
const BatchSizeDefault = 2048

// Record is one data record of the input and what became of it.
type Record struct {
	Row    int64  // 1-based number of the data record: header and blank lines excluded
	Input  string // the raw text of the number's field (see listreader.Record)
	Number string // E.164 when the number goes on; "" when the record is rejected
	Reason string // "" when the number goes on, else why not: invalid, missing, malformed, duplicate of row N
	// Known is what the capability memory held for the number
	// (PipelineConfig.Memory); zero when nothing, or no memory was read.
	Known capstore.Record
}

// Sink receives what a pipeline makes of its input, in row order, from one
// goroutine. An error stops the pipeline and is returned by Process.
type Sink interface {
	// Chunk is called with chunk index (0, 1, ...) of up to ChunkSize
	// consecutive valid, first-seen numbers. The slice is reused after
	// Chunk returns: copy what must be kept.
	Chunk(ctx context.Context, index int, records []Record) error
	// Reject is called with each record that goes no further; its Reason
	// is set.
	Reject(ctx context.Context, rec Record) error
}

// CacheSink is a Sink that may answer numbers from the capability memory
// instead of sending them.
type CacheSink interface {
	Sink
	// Cache is called, in row order, with each valid first-seen number
	// before it is put in a chunk. When it reports true, the sink took the
	// number as answered (rec.Known, which it may set, is the answer): it
	// goes in no chunk and counts as Cached.
	Cache(ctx context.Context, rec *Record) (bool, error)
}

// PipelineConfig tunes Process.
type PipelineConfig struct {
	// DefaultRegion is the region of numbers written without a country
	// code. Defaults to phonenorm.DefaultRegionDefault ("IN").
	DefaultRegion string
	// ChunkSize is the number of numbers per chunk. Defaults to
	// ChunkSizeDefault (1000).
	ChunkSize int
	// Workers is the number of normalizing goroutines. Defaults to
	// GOMAXPROCS.
	Workers int
	// BatchSize is the number of records a worker normalizes at a time.
	// Defaults to BatchSizeDefault (2048).
	BatchSize int
	// Progress, when set, is called from the reading goroutine after each
	// batch with the number of records read so far. Defaults to none.
	Progress func(rows int64)
	// Memory, when set, is read for every valid number (Record.Known), by
	// the normalizing goroutines, a batch at a time. Defaults to none.
	Memory Memory
	// Started, when set, is called once the pipeline's start is over: the
	// first chunk is out, or enough rows went by without one (see
	// Process). Defaults to none.
	Started func()
}

// Counts says what became of the records of an input: the job's counts
// (Cached are the valid numbers a CacheSink took as answered: in Valid, in
// no chunk), and the chunks they made.
type Counts struct {
	jobstore.Counts
	Chunks int
	// Library counts the values libphonenumber's own parser read because
	// the fast path was not sure of them; statistics only.
	Library int64
}

// Rejected is the number of records that went no further.
func (c Counts) Rejected() int64 { return c.Invalid + c.Missing + c.Malformed + c.Duplicates }

// WithDefaults returns c with its zero fields set to their defaults.
func (c PipelineConfig) WithDefaults() PipelineConfig {
	c.DefaultRegion = cmp.Or(c.DefaultRegion, phonenorm.DefaultRegionDefault)
	c.ChunkSize = cmp.Or(c.ChunkSize, ChunkSizeDefault)
	c.Workers = cmp.Or(c.Workers, runtime.GOMAXPROCS(0))
	c.BatchSize = cmp.Or(c.BatchSize, BatchSizeDefault)
	return c
}

// batch is a run of consecutive records and the dedupe keys of their numbers.
type batch struct {
	seq     int
	recs    []Record
	keys    []uint64
	library int // values of recs the library parsed
}

// Process reads every record of rd, normalizes the numbers on all cores,
// keeps the first row of each number, and calls sink in row order: Chunk for
// each run of ChunkSize unique numbers, Reject for every other record.
//
// Reading, normalizing and deduping overlap: one goroutine reads batches,
// Workers goroutines normalize them, and the calling goroutine puts them
// back in order and dedupes, so the set of seen numbers has one owner and
// needs no lock. At most 4×Workers batches are in flight, which bounds
// memory.
//
// Until the first chunk is out (its Chunk call returned), the pipeline
// holds only about that chunk's rows: ChunkSize and a quarter more, for the
// rows that go in no chunk, in batches of up to BatchSize. The first chunk
// is then cut from as few rows as can make it, and the rows after it, the
// capability memory's background read (a capstore.Snapshot's, held until
// then) and their Redis commands do not compete with its own for the cores
// and Redis. After 4 times those rows without a chunk (a list that starts
// with rejects or numbers the memory answered), the pipeline opens all the
// same.
func Process(ctx context.Context, rd *listreader.Reader, cfg PipelineConfig, sink Sink) (Counts, error) {
	cfg = cfg.WithDefaults()
	window := 4 * cfg.Workers
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	startRows := max(cfg.ChunkSize+cfg.ChunkSize/4, minStartRows)
	p := &stages{
		cfg:        cfg,
		tokens:     make(chan struct{}, window),
		todo:       make(chan *batch, window),
		done:       make(chan *batch, window),
		free:       make(chan *batch, window),
		startBatch: min(cfg.BatchSize, startRows),
	}
	// Tokens taken for good until the start ends: the reader has the rest.
	g := &start{tokens: p.tokens, rows: 4 * int64(startRows), open: &p.open}
	g.held = window - min(window, (startRows+p.startBatch-1)/p.startBatch)
	for range g.held {
		p.tokens <- struct{}{}
	}
	if pf, ok := cfg.Memory.(prefetcher); ok {
		pf.HoldPrefetch()
		g.prefetch = func() { pf.Prefetch(ctx) }
	}
	g.started = cfg.Started

	// Shutdown order: the reader closes todo; workers drain it and exit;
	// the last one out closes done; the consumer below ranges over done.
	// On an early return, cancel makes the reader and workers stop at
	// their next channel operation, and we wait for them.
	p.wg.Add(1)
	go p.read(ctx, rd)
	p.normalize(ctx, cancel)

	cache, _ := sink.(CacheSink)
	d := deduper{sink: sink, cache: cache, chunkSize: cfg.ChunkSize, seen: phonenorm.NewSet(), chunk: make([]Record, 0, cfg.ChunkSize)}
	defer d.seen.Free()
	err := d.consume(ctx, p.done, p.tokens, p.free, window, g)
	cancel()
	for range p.done { // let blocked workers finish
	}
	p.wg.Wait()
	if err == nil {
		err = p.errRead
	}
	if err == nil {
		err = p.errRecall
	}
	if err == nil {
		// Cancelled mid-way, the reader stopped early: no partial chunk.
		err = parent.Err()
	}
	if err == nil {
		err = d.flush(parent)
	}
	return d.counts, err
}

// stages are the reading and normalizing goroutines of Process and the
// queues between them.
type stages struct {
	cfg     PipelineConfig
	tokens  chan struct{} // one per batch in flight
	todo    chan *batch   // read, to normalize
	done    chan *batch   // normalized, to dedupe
	free    chan *batch   // recycled batches
	wg      sync.WaitGroup
	errRead error // set by the reader before it closes todo

	open       atomic.Bool // the start is over (see Process)
	startBatch int         // the size of a batch until then

	recallOnce sync.Once
	errRecall  error // the memory's first failure, set before done closes
}

// read reads rd into batches for the workers, then closes todo.
func (p *stages) read(ctx context.Context, rd *listreader.Reader) {
	defer p.wg.Done()
	defer close(p.todo)
	for seq := 0; ; seq++ {
		select {
		case p.tokens <- struct{}{}:
		case <-ctx.Done():
			return
		}
		size := p.cfg.BatchSize
		if !p.open.Load() {
			size = p.startBatch
		}
		var b *batch
		select {
		case b = <-p.free:
		default:
			b = &batch{recs: make([]Record, 0, size), keys: make([]uint64, 0, size)}
		}
		b.seq, b.recs, b.keys, b.library = seq, b.recs[:0], b.keys[:0], 0
		var err error
		for len(b.recs) < size {
			var r listreader.Record
			if r, err = rd.Next(); err != nil {
				break
			}
			b.recs = append(b.recs, Record{Row: r.Row, Input: r.Input, Reason: r.Reason})
		}
		if p.cfg.Progress != nil {
			p.cfg.Progress(rd.Rows())
		}
		if len(b.recs) > 0 {
			select {
			case p.todo <- b:
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				p.errRead = err
			}
			return
		}
	}
}

// normalize starts the workers that normalize the numbers of each batch
// (and read what the memory holds of them); the last one to stop closes
// done. A failure of the memory stops the pipeline through cancel.
func (p *stages) normalize(ctx context.Context, cancel context.CancelFunc) {
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var known []capstore.Record
			for b := range p.todo {
				for i := range b.recs {
					r := &b.recs[i]
					var key uint64
					if r.Reason == "" {
						n := phonenorm.Normalize(r.Input, p.cfg.DefaultRegion)
						r.Number, key, r.Reason = n.E164, n.Key, n.Reason
						if n.Library {
							b.library++
						}
					}
					b.keys = append(b.keys, key)
				}
				if p.cfg.Memory != nil {
					known = slices.Grow(known[:0], len(b.keys))[:len(b.keys)]
					if err := p.cfg.Memory.Recall(ctx, b.keys, known); err != nil {
						p.recallOnce.Do(func() { p.errRecall = fmt.Errorf("reading the capability memory: %w", err) })
						cancel()
						return
					}
					for i := range b.recs {
						b.recs[i].Known = known[i]
					}
				}
				select {
				case p.done <- b:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(p.done)
	}()
}

// deduper puts batches back in row order, dedupes and cuts chunks.
type deduper struct {
	sink      Sink
	cache     CacheSink // sink, when it is one
	chunkSize int
	seen      *phonenorm.Set
	chunk     []Record
	counts    Counts
	// cur is the record being deduped: a local would move to the heap
	// for each record, as the cache sink gets its address.
	cur Record
}

// start holds the pipeline to the first chunk's rows until that chunk is
// out, or rows records went by without one: it holds held of the reader's
// tokens, and the memory's background read.
type start struct {
	tokens   <-chan struct{}
	held     int
	rows     int64
	open     *atomic.Bool
	prefetch func() // nil without a memory that holds it
	started  func() // PipelineConfig.Started
}

// after is called by the consumer after each batch: once the start is
// over, it lets go of the tokens and the memory's read.
func (g *start) after(c *Counts) {
	if g.open.Load() || (c.Chunks == 0 && c.Rows < g.rows) {
		return
	}
	g.open.Store(true)
	for range g.held {
		<-g.tokens
	}
	if g.prefetch != nil {
		g.prefetch()
	}
	if g.started != nil {
		g.started()
	}
}

// prefetcher is a memory whose background read of all it holds waits to be
// told to start (capstore.Snapshot).
type prefetcher interface {
	HoldPrefetch()
	Prefetch(ctx context.Context)
}

func (d *deduper) consume(ctx context.Context, done <-chan *batch, tokens <-chan struct{}, free chan<- *batch, window int, g *start) error {
	ring := make([]*batch, window) // batches that came early, by seq % window
	next := 0
	for b := range done {
		ring[b.seq%window] = b
		for {
			b := ring[next%window]
			if b == nil || b.seq != next {
				break
			}
			ring[next%window] = nil
			if err := d.batch(ctx, b); err != nil {
				return err
			}
			next++
			<-tokens
			g.after(&d.counts)
			select {
			case free <- b:
			default:
			}
		}
	}
	return nil
}

func (d *deduper) batch(ctx context.Context, b *batch) error {
	d.counts.Library += int64(b.library)
	for i := range b.recs {
		d.cur = b.recs[i]
		r := &d.cur
		d.counts.Rows++
		if r.Reason == "" {
			if first, dup := d.seen.FirstSeen(b.keys[i], r.Row); dup {
				r.Number, r.Reason = "", phonenorm.DuplicateReason(first)
			}
		}
		if r.Reason != "" {
			d.count(r.Reason)
			if err := d.sink.Reject(ctx, *r); err != nil {
				return err
			}
			continue
		}
		d.counts.Valid++
		if d.cache != nil {
			cached, err := d.cache.Cache(ctx, r)
			if err != nil {
				return err
			}
			if cached {
				d.counts.Cached++
				if r.Known.Capability == capstore.Rejected {
					d.counts.CachedRejected++
				}
				continue
			}
		}
		d.chunk = append(d.chunk, *r)
		if len(d.chunk) == d.chunkSize {
			if err := d.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *deduper) count(reason string) {
	switch reason {
	case phonenorm.ReasonInvalid:
		d.counts.Invalid++
	case phonenorm.ReasonMissing:
		d.counts.Missing++
	case listreader.ReasonMalformed:
		d.counts.Malformed++
	default:
		d.counts.Duplicates++
	}
}

// flush hands the current chunk, if any, to the sink.
func (d *deduper) flush(ctx context.Context) error {
	if len(d.chunk) == 0 {
		return nil
	}
	if err := d.sink.Chunk(ctx, d.counts.Chunks, d.chunk); err != nil {
		return err
	}
	d.counts.Chunks++
	clear(d.chunk) // drop the strings for the GC
	d.chunk = d.chunk[:0]
	return nil
}
