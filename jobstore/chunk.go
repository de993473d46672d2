package jobstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Entry is one valid, first-seen number of a job: what results.csv needs of it.
type Entry struct {
	Row    int64  // 1-based data record number in the input
	Number string // E.164, with '+'
	Input  string // the raw text of the input field
}

// The first byte of an encoded chunk: its version. Version 1 (read only)
// stored an input that is not the number itself as its whole text;
// version 2 keeps it as a template of the number's digits, once per chunk.
const (
	chunkV1      = 1
	chunkVersion = 2
)

// Tags of the input field: most inputs are the number itself, so they cost
// one byte.
const (
	inputIsE164   = 0 // Input == Number
	inputIsDigits = 1 // Input == Number without '+'
	// v1: Input follows, its length is tag-inputLiteral. v2: tag-inputTemplate
	// is the index of the input's template when below the chunk's count of
	// templates (T); else Input follows, its length is tag-inputTemplate-T.
	inputLiteral  = 2
	inputTemplate = 2
)

// An input is written the same way all over a list ("+91 98765 43210",
// "098765 43210", "0091-98765-43210"): its template is the input with each
// run of the number's trailing digits replaced by one byte, the run's
// length (1 to maxRun), so that the template repeats from number to number
// and a chunk stores each template once. Decoding puts the number's last
// digits back in order.
const (
	maxRun       = 15
	maxTemplates = 64 // per chunk; inputs of other shapes are stored whole
)

// appendTemplate appends to t the template of input for the number's
// digits, or returns false when input does not end with them in that way
// or holds control bytes (which the runs' bytes would be read as). A chunk
// reuses one buffer: most of its templates are known already.
func appendTemplate(t []byte, input, digits string) ([]byte, bool) {
	for i := 0; i < len(input); i++ {
		if input[i] < ' ' {
			return t, false
		}
	}
	// From the end, the input's digits that are the number's last ones,
	// separators in between; the rest (a trunk or international prefix,
	// text) stays as it is.
	i, j := len(input), len(digits)
	for i > 0 && j > 0 {
		c := input[i-1]
		if c >= '0' && c <= '9' {
			if c != digits[j-1] {
				break
			}
			j--
		}
		i--
	}
	if j == len(digits) {
		return t, false
	}
	t = append(t, input[:i]...)
	run := 0
	for k := i; k < len(input); k++ {
		if c := input[k]; c >= '0' && c <= '9' {
			if run == maxRun {
				t, run = append(t, byte(run)), 0
			}
			run++
			continue
		}
		if run > 0 {
			t, run = append(t, byte(run)), 0
		}
		t = append(t, input[k])
	}
	if run > 0 {
		t = append(t, byte(run))
	}
	return t, true
}

// fillTemplate is the inverse of appendTemplate: it appends to b the input
// of template t and the number's digits; false when the template takes
// more digits than the number has.
func fillTemplate(b []byte, t string, digits []byte) ([]byte, bool) {
	need := 0
	for i := 0; i < len(t); i++ {
		if t[i] < ' ' {
			need += int(t[i])
		}
	}
	if need > len(digits) {
		return b, false
	}
	d := digits[len(digits)-need:]
	for i := 0; i < len(t); i++ {
		if n := int(t[i]); n < ' ' {
			b, d = append(b, d[:n]...), d[n:]
		} else {
			b = append(b, t[i])
		}
	}
	return b, true
}

// EncodeChunk packs entries into the compact blob stored in Redis: rows as
// deltas, numbers as integers, inputs only when they differ from the number,
// as templates of its digits stored once per chunk where they fit. Rows
// must increase strictly and numbers must be E.164.
func EncodeChunk(entries []Entry) ([]byte, error) {
	return encodeEntries(len(entries), func(i int) *Entry { return &entries[i] })
}

// encodeEntries is EncodeChunk of the n entries entry returns, so that a
// blob of cached numbers is packed without copying them out.
func encodeEntries(n int, entry func(int) *Entry) ([]byte, error) {
	type packed struct {
		num uint64
		tag int // -1: literal
	}
	ps := make([]packed, n)
	var templates []string
	var t []byte
	index := make(map[string]int)
	var prev int64
	for i := range ps {
		e := entry(i)
		if e.Row <= prev {
			return nil, fmt.Errorf("entry %d: row %d does not follow row %d", i, e.Row, prev)
		}
		prev = e.Row
		num, err := NumberToUint(e.Number)
		if err != nil {
			return nil, fmt.Errorf("entry %d (row %d): %w", i, e.Row, err)
		}
		ps[i].num = num
		switch {
		case e.Input == e.Number:
			ps[i].tag = inputIsE164
		case e.Input == e.Number[1:]:
			ps[i].tag = inputIsDigits
		default:
			ps[i].tag = -1
			var ok bool
			t, ok = appendTemplate(t[:0], e.Input, e.Number[1:])
			if !ok || len(t) >= len(e.Input) {
				break
			}
			k, seen := index[string(t)]
			if !seen && len(templates) < maxTemplates {
				k, seen = len(templates), true
				index[string(t)] = k
				templates = append(templates, string(t))
			}
			if seen {
				ps[i].tag = inputTemplate + k
			}
		}
	}
	b := make([]byte, 0, 2+binary.MaxVarintLen64+n*10)
	b = append(b, chunkVersion)
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.AppendUvarint(b, uint64(len(templates)))
	for _, t := range templates {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	prev = 0
	for i, p := range ps {
		e := entry(i)
		b = binary.AppendUvarint(b, uint64(e.Row-prev))
		b = binary.AppendUvarint(b, p.num)
		if p.tag >= 0 {
			b = binary.AppendUvarint(b, uint64(p.tag))
		} else {
			b = binary.AppendUvarint(b, uint64(inputTemplate+len(templates)+len(e.Input)))
			b = append(b, e.Input...)
		}
		prev = e.Row
	}
	return b, nil
}

var errCorruptChunk = errors.New("corrupt chunk blob")

// DecodeChunk is the inverse of EncodeChunk; it reads blobs of version 1 too.
func DecodeChunk(b []byte) ([]Entry, error) {
	if len(b) == 0 || (b[0] != chunkVersion && b[0] != chunkV1) {
		return nil, fmt.Errorf("%w: unknown version", errCorruptChunk)
	}
	r := &chunkReader{b: b[1:]}
	count, err := r.next()
	if err != nil || count > uint64(len(r.b)) {
		return nil, errCorruptChunk
	}
	var templates []string
	literal := uint64(inputLiteral)
	if b[0] == chunkVersion {
		if templates, err = r.templates(); err != nil {
			return nil, err
		}
		literal = uint64(inputTemplate + len(templates))
	}
	// The numbers and inputs are written into one buffer, made one string
	// at the end that theirs are cut from: one allocation per chunk, not
	// one or two per entry.
	entries := make([]Entry, count)
	spans := make([]entrySpan, count)
	text := make([]byte, 0, count*16)
	var row int64
	for k := range entries {
		if text, err = r.entry(&entries[k], &spans[k], row, templates, literal, text); err != nil {
			return nil, err
		}
		row = entries[k].Row
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCorruptChunk, len(r.b))
	}
	all := string(text)
	for k := range entries {
		sp := &spans[k]
		entries[k].Number, entries[k].Input = all[sp.num:sp.numEnd], all[sp.in:sp.inEnd]
	}
	return entries, nil
}

// entrySpan is where an entry's number and input are in the text
// DecodeChunk builds: [num, numEnd) and [in, inEnd).
type entrySpan struct{ num, numEnd, in, inEnd int }

// chunkReader reads a chunk blob from its front.
type chunkReader struct{ b []byte }

func (r *chunkReader) next() (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, errCorruptChunk
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *chunkReader) bytes(l uint64) (string, error) {
	if l > uint64(len(r.b)) {
		return "", errCorruptChunk
	}
	s := string(r.b[:l])
	r.b = r.b[l:]
	return s, nil
}

// templates reads the chunk's input templates (version 2 on).
func (r *chunkReader) templates() ([]string, error) {
	nt, err := r.next()
	if err != nil || nt > maxTemplates {
		return nil, errCorruptChunk
	}
	var templates []string
	for range nt {
		l, err := r.next()
		if err != nil {
			return nil, err
		}
		t, err := r.bytes(l)
		if err != nil {
			return nil, err
		}
		templates = append(templates, t)
	}
	return templates, nil
}

// entry reads the entry after the one at row into e, its number and input
// appended to text (their places in sp); tags from literal on are inputs
// written out.
func (r *chunkReader) entry(e *Entry, sp *entrySpan, row int64, templates []string, literal uint64, text []byte) ([]byte, error) {
	var f [3]uint64 // row delta, number, input tag
	for i := range f {
		v, err := r.next()
		if err != nil {
			return text, err
		}
		f[i] = v
	}
	e.Row = row + int64(f[0])
	sp.num = len(text)
	text = strconv.AppendUint(append(text, '+'), f[1], 10)
	sp.numEnd = len(text)
	switch tag := f[2]; {
	case tag == inputIsE164:
		sp.in, sp.inEnd = sp.num, sp.numEnd
		return text, nil
	case tag == inputIsDigits:
		sp.in, sp.inEnd = sp.num+1, sp.numEnd
		return text, nil
	}
	sp.in = len(text)
	if tag := f[2]; tag < literal {
		var ok bool
		// The digits are read from text as it grows: appending never
		// writes over them, and a new array leaves the old one readable.
		if text, ok = fillTemplate(text, templates[tag-inputTemplate], text[sp.num+1:sp.numEnd]); !ok {
			return text, errCorruptChunk
		}
	} else {
		l := tag - literal
		if l > uint64(len(r.b)) {
			return text, errCorruptChunk
		}
		text, r.b = append(text, r.b[:l]...), r.b[l:]
	}
	sp.inEnd = len(text)
	return text, nil
}

// NumberToUint returns the digits of an E.164 number as an integer: E.164 has at
// most 15 digits and never a leading zero, so the conversion is exact both ways.
func NumberToUint(e164 string) (uint64, error) {
	digits, ok := strings.CutPrefix(e164, "+")
	if !ok || len(digits) == 0 || len(digits) > 15 || digits[0] == '0' {
		return 0, fmt.Errorf("%q is not an E.164 number", e164)
	}
	var n uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not an E.164 number", e164)
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}
