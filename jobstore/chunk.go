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

// chunkVersion is the first byte of an encoded chunk.
const chunkVersion = 1

// Tags of the input field: most inputs are the number itself, so they cost one byte.
const (
	inputIsE164   = 0 // Input == Number
	inputIsDigits = 1 // Input == Number without '+'
	inputLiteral  = 2 // Input follows, its length is tag-inputLiteral
)

// EncodeChunk packs entries into the compact blob stored in Redis: rows as
// deltas, numbers as integers, inputs only when they differ from the number.
// Rows must increase strictly and numbers must be E.164.
func EncodeChunk(entries []Entry) ([]byte, error) {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(entries)*10)
	b = append(b, chunkVersion)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	var prev int64
	for i, e := range entries {
		if e.Row <= prev {
			return nil, fmt.Errorf("entry %d: row %d does not follow row %d", i, e.Row, prev)
		}
		n, err := NumberToUint(e.Number)
		if err != nil {
			return nil, fmt.Errorf("entry %d (row %d): %w", i, e.Row, err)
		}
		b = binary.AppendUvarint(b, uint64(e.Row-prev))
		b = binary.AppendUvarint(b, n)
		switch {
		case e.Input == e.Number:
			b = binary.AppendUvarint(b, inputIsE164)
		case e.Input == e.Number[1:]:
			b = binary.AppendUvarint(b, inputIsDigits)
		default:
			b = binary.AppendUvarint(b, uint64(inputLiteral+len(e.Input)))
			b = append(b, e.Input...)
		}
		prev = e.Row
	}
	return b, nil
}

var errCorruptChunk = errors.New("corrupt chunk blob")

// DecodeChunk is the inverse of EncodeChunk.
func DecodeChunk(b []byte) ([]Entry, error) {
	if len(b) == 0 || b[0] != chunkVersion {
		return nil, fmt.Errorf("%w: unknown version", errCorruptChunk)
	}
	b = b[1:]
	next := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errCorruptChunk
		}
		b = b[n:]
		return v, nil
	}
	count, err := next()
	if err != nil || count > uint64(len(b)) {
		return nil, errCorruptChunk
	}
	entries := make([]Entry, 0, count)
	var row int64
	for range count {
		d, err := next()
		if err != nil {
			return nil, err
		}
		n, err := next()
		if err != nil {
			return nil, err
		}
		tag, err := next()
		if err != nil {
			return nil, err
		}
		row += int64(d)
		e := Entry{Row: row, Number: "+" + strconv.FormatUint(n, 10)}
		switch {
		case tag == inputIsE164:
			e.Input = e.Number
		case tag == inputIsDigits:
			e.Input = e.Number[1:]
		default:
			l := tag - inputLiteral
			if l > uint64(len(b)) {
				return nil, errCorruptChunk
			}
			e.Input = string(b[:l])
			b = b[l:]
		}
		entries = append(entries, e)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCorruptChunk, len(b))
	}
	return entries, nil
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
