package enqueue

import (
	"cmp"
	"context"
	"io"
	"runtime"
	"sync"
)

// ChunkSizeDefault is how many numbers go in one chunk task.
const ChunkSizeDefault = 1000

// BatchSizeDefault is how many records a normalizing worker takes at once:
// big enough that handing batches around costs nothing next to parsing.
const BatchSizeDefault = 2048

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

// PipelineConfig tunes Process.
type PipelineConfig struct {
	// DefaultRegion is the region of numbers written without a country
	// code. Defaults to "IN".
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
}

// Counts says what became of the records of an input.
type Counts struct {
	Rows       int64 // data records read
	Valid      int64 // valid, first-seen numbers: sent on in chunks
	Invalid    int64
	Missing    int64
	Malformed  int64
	Duplicates int64
	Chunks     int
}

// Rejected is the number of records that went no further.
func (c Counts) Rejected() int64 { return c.Invalid + c.Missing + c.Malformed + c.Duplicates }

// batch is a run of consecutive records and the dedupe keys of their numbers.
type batch struct {
	seq  int
	recs []Record
	keys []uint64
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
func Process(ctx context.Context, rd *Reader, cfg PipelineConfig, sink Sink) (Counts, error) {
	region := cmp.Or(cfg.DefaultRegion, DefaultRegionDefault)
	chunkSize := cmp.Or(cfg.ChunkSize, ChunkSizeDefault)
	workers := cmp.Or(cfg.Workers, runtime.GOMAXPROCS(0))
	batchSize := cmp.Or(cfg.BatchSize, BatchSizeDefault)
	window := 4 * workers

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		tokens = make(chan struct{}, window) // one per batch in flight
		todo   = make(chan *batch, window)
		done   = make(chan *batch, window)
		free   = make(chan *batch, window) // recycled batches
		wg     sync.WaitGroup
		errRd  error // set by the reader before it closes todo
	)

	// Shutdown order: the reader closes todo; workers drain it and exit;
	// the last one out closes done; the consumer below ranges over done.
	// On an early return, cancel makes the reader and workers stop at
	// their next channel operation, and we wait for them.
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(todo)
		for seq := 0; ; seq++ {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
			var b *batch
			select {
			case b = <-free:
			default:
				b = &batch{recs: make([]Record, 0, batchSize), keys: make([]uint64, 0, batchSize)}
			}
			b.seq, b.recs, b.keys = seq, b.recs[:0], b.keys[:0]
			var err error
			for len(b.recs) < batchSize {
				var r Record
				if r, err = rd.Next(); err != nil {
					break
				}
				b.recs = append(b.recs, r)
			}
			if cfg.Progress != nil {
				cfg.Progress(rd.Rows())
			}
			if len(b.recs) > 0 {
				select {
				case todo <- b:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					errRd = err
				}
				return
			}
		}
	}()

	var wwg sync.WaitGroup
	for range workers {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			n := NewNormalizer(region)
			for b := range todo {
				for i := range b.recs {
					r := &b.recs[i]
					var key uint64
					if r.Reason == "" {
						r.Number, key, r.Reason = n.Normalize(r.Input)
					}
					b.keys = append(b.keys, key)
				}
				select {
				case done <- b:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		wwg.Wait()
		close(done)
	}()

	d := deduper{sink: sink, chunkSize: chunkSize, seen: newSeenSet(), chunk: make([]Record, 0, chunkSize)}
	defer d.seen.free()
	err := d.consume(ctx, done, tokens, free, window)
	cancel()
	for range done { // let blocked workers finish
	}
	wg.Wait()
	if err == nil {
		err = errRd
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

// deduper puts batches back in row order, dedupes and cuts chunks.
type deduper struct {
	sink      Sink
	chunkSize int
	seen      *seenSet
	chunk     []Record
	counts    Counts
}

func (d *deduper) consume(ctx context.Context, done <-chan *batch, tokens <-chan struct{}, free chan<- *batch, window int) error {
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
			select {
			case free <- b:
			default:
			}
		}
	}
	return nil
}

func (d *deduper) batch(ctx context.Context, b *batch) error {
	for i := range b.recs {
		r := b.recs[i]
		d.counts.Rows++
		if r.Reason == "" {
			if first, dup := d.seen.firstSeen(b.keys[i], r.Row); dup {
				r.Number, r.Reason = "", DuplicateReason(first)
			}
		}
		if r.Reason != "" {
			d.count(r.Reason)
			if err := d.sink.Reject(ctx, r); err != nil {
				return err
			}
			continue
		}
		d.counts.Valid++
		d.chunk = append(d.chunk, r)
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
	case ReasonInvalid:
		d.counts.Invalid++
	case ReasonMissing:
		d.counts.Missing++
	case ReasonMalformed:
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
