package jobstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capstore"
)

// A job enqueued with the capability memory keeps, besides its chunks:
//
//   - cached blob i: the numbers answered by the memory (not sent) that
//     come after chunk i-1's last row and up to chunk i's (blob Chunks:
//     those after the last chunk), with their remembered record; written
//     before chunk i, so a resumed enqueue finds the decisions an earlier
//     run made and makes the same ones (the memory may have changed since);
//   - before blob i: what the memory held for chunk i's numbers when they
//     were enqueued, for changes.csv; only the numbers it held anything for.
func cachedKey(id string, i int) string {
	return "capcheck:job:{" + spreadTag(id, "k", i) + "}:cached"
}

func beforeKey(id string, i int) string {
	return "capcheck:job:{" + spreadTag(id, "b", i) + "}:before"
}

// CachedNumber is a number the memory answered: it was not sent.
type CachedNumber struct {
	Entry
	Known capstore.Record
}

// CachedBlob is the numbers answered by the memory between two chunks, in
// row order, and the last row it accounts for (that of the chunk it goes
// with, or the input's last).
type CachedBlob struct {
	Through int64
	Numbers []CachedNumber
}

const cachedVersion = 1

// appendKnown appends a record: its capability, then (unless none) its
// time in Unix seconds and (for a rejection) its reason's reference.
func appendKnown(b []byte, r capstore.Record) []byte {
	b = binary.AppendUvarint(b, uint64(r.Capability))
	if r.Capability == capstore.None {
		return b
	}
	b = binary.AppendUvarint(b, uint64(max(r.At.Unix(), 0)))
	if r.Capability == capstore.Rejected {
		b = binary.AppendUvarint(b, uint64(r.Reason))
	}
	return b
}

// reader reads varints off a blob.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorruptChunk
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) known() capstore.Record {
	c := capstore.Capability(r.uvarint())
	if c == capstore.None {
		return capstore.Record{}
	}
	if c > capstore.Rejected {
		r.err = errCorruptChunk
	}
	k := capstore.Record{Capability: c, At: time.Unix(int64(r.uvarint()), 0).UTC()}
	if c == capstore.Rejected {
		k.Reason = uint16(r.uvarint())
	}
	return k
}

// EncodeCached packs a blob of cached numbers: the entries as a chunk
// packs them, then each one's record.
func EncodeCached(c CachedBlob) ([]byte, error) {
	chunk, err := encodeEntries(len(c.Numbers), func(i int) *Entry { return &c.Numbers[i].Entry })
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 16+len(chunk)+len(c.Numbers)*7)
	b = append(b, cachedVersion)
	b = binary.AppendUvarint(b, uint64(c.Through))
	b = binary.AppendUvarint(b, uint64(len(chunk)))
	b = append(b, chunk...)
	for _, n := range c.Numbers {
		b = appendKnown(b, n.Known)
	}
	return b, nil
}

// DecodeCached is the inverse of EncodeCached.
func DecodeCached(b []byte) (CachedBlob, error) {
	if len(b) == 0 || b[0] != cachedVersion {
		return CachedBlob{}, fmt.Errorf("%w: unknown version of cached numbers", errCorruptChunk)
	}
	r := &reader{b: b[1:]}
	c := CachedBlob{Through: int64(r.uvarint())}
	l := r.uvarint()
	if r.err != nil || l > uint64(len(r.b)) {
		return CachedBlob{}, errCorruptChunk
	}
	entries, err := DecodeChunk(r.b[:l])
	if err != nil {
		return CachedBlob{}, err
	}
	r.b = r.b[l:]
	c.Numbers = make([]CachedNumber, len(entries))
	for i, e := range entries {
		c.Numbers[i] = CachedNumber{Entry: e, Known: r.known()}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errCorruptChunk, len(r.b))
	}
	return c, r.err
}

// EncodeBefore packs what the memory held for a chunk's numbers: the
// count of those it held anything for, then for each its index (as the
// gap from the previous one) and record.
func EncodeBefore(known []capstore.Record) []byte {
	n := 0
	for _, k := range known {
		if !k.IsZero() {
			n++
		}
	}
	b := binary.AppendUvarint(make([]byte, 0, 1+n*8), uint64(n))
	prev := -1
	for i, k := range known {
		if k.IsZero() {
			continue
		}
		b = binary.AppendUvarint(b, uint64(i-prev-1))
		b = appendKnown(b, k)
		prev = i
	}
	return b
}

// DecodeBefore is the inverse of EncodeBefore for a chunk of n numbers.
func DecodeBefore(b []byte, n int) ([]capstore.Record, error) {
	out := make([]capstore.Record, n)
	r := &reader{b: b}
	count := r.uvarint()
	i := -1
	for range count {
		i += int(r.uvarint()) + 1
		k := r.known()
		if r.err != nil {
			break
		}
		if i >= n {
			return nil, fmt.Errorf("%w: index %d of a chunk of %d", errCorruptChunk, i, n)
		}
		out[i] = k
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errCorruptChunk, len(r.b))
	}
	return out, r.err
}

// PutCached stores cached blob i and, when known is not nil, the before
// blob of chunk i. Storing them again is harmless.
func (s *Store) PutCached(ctx context.Context, job string, i int, c CachedBlob, known []capstore.Record) error {
	b, err := EncodeCached(c)
	if err != nil {
		return fmt.Errorf("job %s cached numbers %d: %w", job, i, err)
	}
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, cachedKey(job, i), b, 0)
	if known != nil {
		pipe.Set(ctx, beforeKey(job, i), EncodeBefore(known), 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("storing job %s cached numbers %d: %w", job, i, err)
	}
	return nil
}

// CachedNumbers returns cached blob i, or ErrNotFound.
func (s *Store) CachedNumbers(ctx context.Context, job string, i int) (CachedBlob, error) {
	b, err := s.rdb.Get(ctx, cachedKey(job, i)).Bytes()
	return decodeCachedBlob(job, i, b, err)
}

// decodeCachedBlob decodes what GET of cached blob i answered.
func decodeCachedBlob(job string, i int, b []byte, err error) (CachedBlob, error) {
	if errors.Is(err, redis.Nil) {
		return CachedBlob{}, fmt.Errorf("job %s cached numbers %d: %w", job, i, ErrNotFound)
	}
	if err != nil {
		return CachedBlob{}, fmt.Errorf("reading job %s cached numbers %d: %w", job, i, err)
	}
	c, err := DecodeCached(b)
	if err != nil {
		return CachedBlob{}, fmt.Errorf("job %s cached numbers %d: %w", job, i, err)
	}
	return c, nil
}

// Before returns what the memory held for the n numbers of chunk i when
// they were enqueued (zero records when nothing, or nothing was noted).
func (s *Store) Before(ctx context.Context, job string, i, n int) ([]capstore.Record, error) {
	b, err := s.rdb.Get(ctx, beforeKey(job, i)).Bytes()
	return decodeBeforeBlob(job, i, n, b, err)
}

// decodeBeforeBlob decodes what GET of chunk i's before blob answered.
func decodeBeforeBlob(job string, i, n int, b []byte, err error) ([]capstore.Record, error) {
	if errors.Is(err, redis.Nil) {
		return make([]capstore.Record, n), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading job %s chunk %d's previous answers: %w", job, i, err)
	}
	k, err := DecodeBefore(b, n)
	if err != nil {
		return nil, fmt.Errorf("job %s chunk %d's previous answers: %w", job, i, err)
	}
	return k, nil
}

// SetChanges records how many numbers changed capability in the job (see
// changes.csv).
func (s *Store) SetChanges(ctx context.Context, job string, n int64) error {
	return s.rdb.HSet(ctx, jobKey(job), fChanges, strconv.FormatInt(n, 10)).Err()
}
