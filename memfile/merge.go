package memfile

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/capcheck/capcheck/capstore"
)

// Answers collects answers to merge into a file, in any order: 16 bytes of
// heap an answer.
type Answers struct {
	es []answer
}

type answer struct {
	n uint64
	p [capstore.PackedSize]byte
}

// seconds is the answer's time, as records compare them.
func (a answer) seconds() uint32 { return binary.BigEndian.Uint32(a.p[:]) >> 2 }

// Add adds the answer r for number. Of two answers for one number, the
// newer is kept (at the same second, the one added last).
func (a *Answers) Add(number uint64, r capstore.Record) {
	a.es = append(a.es, answer{n: number, p: r.Pack()})
}

// Len returns how many answers were added.
func (a *Answers) Len() int {
	if a == nil {
		return 0
	}
	return len(a.es)
}

// sorted returns the answers by number, one per number.
func (a *Answers) sorted() ([]answer, error) {
	if a == nil {
		return nil, nil
	}
	for _, e := range a.es {
		r := capstore.UnpackRecord(e.p)
		if e.n == 0 || e.n > capstore.MaxNumber || r.Capability == capstore.None || r.Capability > capstore.Rejected {
			return nil, fmt.Errorf("answer for number %d (capability %d) out of range", e.n, r.Capability)
		}
	}
	slices.SortStableFunc(a.es, func(x, y answer) int { return cmp.Compare(x.n, y.n) })
	out := a.es[:0]
	for _, e := range a.es {
		if k := len(out) - 1; k >= 0 && out[k].n == e.n {
			if e.seconds() >= out[k].seconds() {
				out[k] = e
			}
			continue
		}
		out = append(out, e)
	}
	a.es = out
	return out, nil
}

// MergeOptions say what a merge keeps.
type MergeOptions struct {
	// Now and ForgetAfter: answers stale at Now ([capstore.Record.Stale])
	// are dropped. ForgetAfter 0 keeps every answer. Now is also the
	// file's time. Defaults to time.Now().
	Now         time.Time
	ForgetAfter time.Duration
	// Forget lists numbers to drop, in any order.
	Forget []uint64
	// Reasons are the rejection reasons of the merged file by reference:
	// the base's and those of the answers. Nil keeps the base's.
	Reasons map[uint16]capstore.Reason
}

// MergeStats count what a merge did.
type MergeStats struct {
	Numbers   int // in the merged file
	Added     int // numbers the base did not hold
	Replaced  int // numbers whose answer a newer one replaced
	Expired   int // dropped as older than ForgetAfter
	Forgotten int // dropped as listed in Forget
}

// Merge writes to w the memory file of base (nil: empty) with the answers
// of add, in one pass over each: a number's newer answer wins, and an
// answer as old as the base's replaces it (it was received later). It
// fails (ErrCorrupt) when base is found damaged on the way; w then holds
// part of a file, to be thrown away.
func Merge(w io.Writer, base *File, add *Answers, o MergeOptions) (MergeStats, error) {
	var st MergeStats
	adds, err := add.sorted()
	if err != nil {
		return st, err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	forget := slices.Sorted(slices.Values(o.Forget))
	reasons := o.Reasons
	if reasons == nil {
		reasons = base.Reasons()
	}
	out := &writer{w: w, buf: make([]byte, 0, 64<<10)}
	put := func(n uint64, p [capstore.PackedSize]byte) (bool, error) {
		for len(forget) > 0 && forget[0] < n {
			forget = forget[1:]
		}
		if len(forget) > 0 && forget[0] == n {
			st.Forgotten++
			return false, nil
		}
		if capstore.UnpackRecord(p).Stale(o.Now, o.ForgetAfter) {
			st.Expired++
			return false, nil
		}
		st.Numbers++
		return true, out.record(n, p)
	}
	putAdded := func(e answer) error {
		ok, err := put(e.n, e.p)
		if ok {
			st.Added++
		}
		return err
	}
	err = base.Each(func(n uint64, r capstore.Record) error {
		for len(adds) > 0 && adds[0].n < n {
			if err := putAdded(adds[0]); err != nil {
				return err
			}
			adds = adds[1:]
		}
		p := r.Pack()
		replaced := false
		if len(adds) > 0 && adds[0].n == n {
			if e := adds[0]; e.seconds() >= (answer{p: p}).seconds() {
				p, replaced = e.p, true
			}
			adds = adds[1:]
		}
		ok, err := put(n, p)
		if ok && replaced {
			st.Replaced++
		}
		return err
	})
	if err != nil {
		return st, err
	}
	for _, e := range adds {
		if err := putAdded(e); err != nil {
			return st, err
		}
	}
	return st, out.finish(reasons, o.Now)
}

// writer writes a memory file: records, then reasons, then the trailer.
type writer struct {
	w       io.Writer
	buf     []byte
	crc     uint32
	count   uint64
	reasons int
}

func (w *writer) flush() error {
	w.crc = crc32.Update(w.crc, castagnoli, w.buf)
	_, err := w.w.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

func (w *writer) reserve(n int) error {
	if len(w.buf)+n > cap(w.buf) {
		return w.flush()
	}
	return nil
}

func (w *writer) record(n uint64, p [capstore.PackedSize]byte) error {
	if err := w.reserve(RecordSize); err != nil {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	w.buf = append(append(w.buf, b[8-numberSize:]...), p[:]...)
	w.count++
	return nil
}

// maxField bounds a reason's code or message in the file.
const maxField = 1<<16 - 1

func (w *writer) finish(reasons map[uint16]capstore.Reason, now time.Time) error {
	if err := w.flush(); err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(reasons)) {
		r := reasons[id]
		code, msg := r.Code[:min(len(r.Code), maxField)], r.Message[:min(len(r.Message), maxField)]
		if err := w.reserve(6 + len(code) + len(msg)); err != nil {
			return err
		}
		w.buf = binary.BigEndian.AppendUint16(w.buf, id)
		w.buf = binary.BigEndian.AppendUint16(w.buf, uint16(len(code)))
		w.buf = append(w.buf, code...)
		w.buf = binary.BigEndian.AppendUint16(w.buf, uint16(len(msg)))
		w.buf = append(w.buf, msg...)
		w.reasons += 6 + len(code) + len(msg)
	}
	if err := w.flush(); err != nil {
		return err
	}
	var t [trailerSize]byte
	binary.BigEndian.PutUint64(t[:], w.count)
	binary.BigEndian.PutUint32(t[8:], uint32(w.reasons))
	binary.BigEndian.PutUint32(t[12:], w.crc)
	binary.BigEndian.PutUint64(t[16:], uint64(now.Unix()))
	copy(t[24:], magic)
	_, err := w.w.Write(t[:])
	return err
}
