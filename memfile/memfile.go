// Package memfile is the capability memory as a file: what `capcheck run` on
// the embedded Redis remembers across runs (the embedded Redis keeps nothing
// after the process ends).
//
// The file is written whole and read in place:
//
//	records   count × 13 bytes, by number ascending, one per number:
//	          the number (7 bytes, big-endian; E.164 numbers are below 2^50),
//	          then capstore's packed record (6 bytes: seconds since
//	          capstore.Epoch << 2 | capability - 1, the rejection's reason)
//	reasons   per rejection reason, by reference ascending: reference (2),
//	          code length (2), code, message length (2), message
//	trailer   32 bytes: count (8), reasons' length (4), CRC-32C of records
//	          and reasons (4), when written (8, Unix seconds), "capmem1\n"
//
// Integers are big-endian. The trailer comes last so that a merge streams
// the file out in one pass. [Map] maps the file into memory (not the heap):
// a lookup is a binary search on the mapping that touches a few pages, and
// the heap holds the reasons alone. [Merge] writes a new file from an old
// one and new answers; the caller writes it to a temporary file, syncs it
// and renames it over the old one, so a crash leaves the old file or the
// new one. A mapped file is never changed in place (that would fault its
// readers): it is replaced.
package memfile

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"syscall"
	"time"

	"github.com/capcheck/capcheck/capstore"
)

const (
	numberSize = 7
	// RecordSize is the bytes of the file per remembered number.
	RecordSize  = numberSize + capstore.PackedSize
	trailerSize = 32
	magic       = "capmem1\n"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by the errors for a file that is not a whole
// memory file (cut short, changed, or not one at all).
var ErrCorrupt = errors.New("not a whole capability memory file")

// File is a memory file mapped for reading. A nil *File is an empty
// memory. It is safe for concurrent use until Close.
type File struct {
	data    []byte // the mapping
	n       int    // records
	reasons map[uint16]capstore.Reason
	crc     uint32
	savedAt time.Time
}

// Map maps the memory file f for reading; f may be closed afterwards.
// Close the File when done.
func Map(f *os.File) (*File, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size < trailerSize || size != int64(int(size)) {
		return nil, fmt.Errorf("%s: %w (%d bytes)", f.Name(), ErrCorrupt, size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", f.Name(), err)
	}
	m, err := parse(data)
	if err != nil {
		_ = syscall.Munmap(data)
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return m, nil
}

// parse checks the trailer and reads the reasons.
func parse(data []byte) (*File, error) {
	t := data[len(data)-trailerSize:]
	if string(t[24:]) != magic {
		return nil, fmt.Errorf("%w: no trailer", ErrCorrupt)
	}
	count := binary.BigEndian.Uint64(t)
	rlen := uint64(binary.BigEndian.Uint32(t[8:]))
	body := uint64(len(data) - trailerSize)
	if count > body/RecordSize || count*RecordSize+rlen != body {
		return nil, fmt.Errorf("%w: %d bytes for %d records and %d bytes of reasons", ErrCorrupt, len(data), count, rlen)
	}
	m := &File{
		data:    data,
		n:       int(count),
		crc:     binary.BigEndian.Uint32(t[12:]),
		savedAt: time.Unix(int64(binary.BigEndian.Uint64(t[16:])), 0).UTC(),
	}
	var err error
	if m.reasons, err = decodeReasons(data[count*RecordSize : body]); err != nil {
		return nil, err
	}
	return m, nil
}

// Close unmaps the file. Closing twice is harmless.
func (m *File) Close() error {
	if m == nil || m.data == nil {
		return nil
	}
	err := syscall.Munmap(m.data)
	m.data, m.n = nil, 0
	return err
}

// Len returns how many numbers the file remembers.
func (m *File) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// Size returns the file's size in bytes.
func (m *File) Size() int64 {
	if m == nil {
		return 0
	}
	return int64(len(m.data))
}

// SavedAt returns when the file was written.
func (m *File) SavedAt() time.Time {
	if m == nil {
		return time.Time{}
	}
	return m.savedAt
}

// Reasons returns the rejection reasons by reference (records of
// rejections carry the reference). Do not change the map.
func (m *File) Reasons() map[uint16]capstore.Reason {
	if m == nil {
		return nil
	}
	return m.reasons
}

func (m *File) number(i int) uint64 {
	b := m.data[i*RecordSize:]
	var n uint64
	for _, c := range b[:numberSize] {
		n = n<<8 | uint64(c)
	}
	return n
}

func (m *File) record(i int) capstore.Record {
	return capstore.UnpackRecord([capstore.PackedSize]byte(m.data[i*RecordSize+numberSize : (i+1)*RecordSize]))
}

// Recall sets out[i] to the remembered answer of numbers[i], the zero
// Record when there is none (len(out) >= len(numbers)), as
// capstore.Store.Recall does. A batch in ascending order costs least: each
// search starts where the last one ended. It allocates nothing.
func (m *File) Recall(_ context.Context, numbers []uint64, out []capstore.Record) error {
	if len(out) < len(numbers) {
		return fmt.Errorf("recalling %d numbers into %d records", len(numbers), len(out))
	}
	lo, prev := 0, uint64(0)
	for i, n := range numbers {
		if n < prev {
			lo = 0
		}
		prev = n
		lo = m.search(lo, n)
		if lo < m.Len() && m.number(lo) == n {
			out[i] = m.record(lo)
		} else {
			out[i] = capstore.Record{}
		}
	}
	return nil
}

// search returns the first index at or after lo whose number is at least
// n: it gallops from lo, then bisects.
func (m *File) search(lo int, n uint64) int {
	end := m.Len()
	hi, step := lo, 1
	for hi < end && m.number(hi) < n {
		lo = hi + 1
		hi += step
		step *= 2
	}
	hi = min(hi, end)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m.number(mid) < n {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Each calls fn for every remembered number, in ascending order, and
// checks the file's checksum at the end: a file changed on disk fails
// there (after fn saw its records), with ErrCorrupt.
func (m *File) Each(fn func(number uint64, r capstore.Record) error) error {
	if m.Len() == 0 {
		return nil
	}
	const block = 4096 // records checksummed at a time
	var crc uint32
	prev := uint64(0)
	for first := 0; first < m.n; first += block {
		end := min(first+block, m.n)
		crc = crc32.Update(crc, castagnoli, m.data[first*RecordSize:end*RecordSize])
		for i := first; i < end; i++ {
			n, r := m.number(i), m.record(i)
			if n <= prev || r.Capability > capstore.Rejected {
				return fmt.Errorf("%w: record %d (number %d after %d)", ErrCorrupt, i, n, prev)
			}
			prev = n
			if err := fn(n, r); err != nil {
				return err
			}
		}
	}
	crc = crc32.Update(crc, castagnoli, m.data[m.n*RecordSize:len(m.data)-trailerSize])
	if crc != m.crc {
		return fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, crc, m.crc)
	}
	return nil
}

// decodeReasons reads the reasons section.
func decodeReasons(b []byte) (map[uint16]capstore.Reason, error) {
	out := map[uint16]capstore.Reason{}
	field := func() (string, bool) {
		if len(b) < 2 {
			return "", false
		}
		l := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+l {
			return "", false
		}
		s := string(b[2 : 2+l])
		b = b[2+l:]
		return s, true
	}
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: reasons cut short", ErrCorrupt)
		}
		id := binary.BigEndian.Uint16(b)
		b = b[2:]
		code, ok1 := field()
		msg, ok2 := field()
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: reasons cut short", ErrCorrupt)
		}
		out[id] = capstore.Reason{Code: code, Message: msg}
	}
	return out, nil
}
