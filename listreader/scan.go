package listreader

import (
	"bytes"
	"io"
)

// scanner cuts CSV records out of a byte stream. It is forgiving where
// encoding/csv is strict (bare quotes inside unquoted fields are text, so are
// unescaped quotes inside quoted fields, ragged rows are fine, a lone '\r'
// ends a line) and strict where encoding/csv with LazyQuotes is dangerous: a
// quoted field that is not properly closed never swallows the rest of the
// input. Such a record ends at the end of the line where the bad field began,
// and scanning resumes on the next line (see quoted).
//
// It keeps only the field it is asked for (and the first bytes of the line),
// so fields of any size cost bounded memory.
type scanner struct {
	src  io.Reader
	buf  []byte
	r, w int   // unread bytes are buf[r:w]
	mark int   // -1, or a position refills must keep: where to resume after a bad quoted field
	err  error // the first error of src, io.EOF included

	heldCR bool // buf[w] is a '\r' read last: a line break or half of "\r\n" (see fill)

	delim    byte // field delimiter; meaningless when noDelim
	noDelim  bool // plain text: a record is a line
	maxSpan  int  // how far a quoted field may run past its first line break
	maxField int  // bytes kept of the selected field; longer ones are flagged
}

// rec is one scanned record.
type rec struct {
	fields    int      // number of fields seen
	val       []byte   // the selected field (at most maxField bytes)
	all       [][]byte // every field, when scanning with col < 0 (the header)
	long      bool     // the selected field was longer than maxField
	malformed bool     // a quoted field was not properly closed
	line      []byte   // the first bytes of the record's first line, for reports
	lineDone  bool     // line has reached its line break
}

const (
	scanBufSize  = 64 << 10
	maxLineKept  = 256      // bytes of a malformed record kept for the report
	maxSpanDef   = 16 << 20 // default of maxSpan
	maxFieldKept = 4096     // default of maxField
)

func newScanner(src io.Reader) *scanner {
	return &scanner{src: src, buf: make([]byte, scanBufSize), mark: -1, maxSpan: maxSpanDef, maxField: maxFieldKept}
}

// fill reads more input. It keeps buf[min(r, mark):] and grows buf when that
// is all of it. It returns false when no byte was added (end of input or an
// error, in s.err).
//
// Line breaks come out as '\n' (or "\r\n"): fill turns each lone '\r', the
// line end of old Mac files, into '\n' as it reads, so the rest of the
// scanner only looks for '\n'. A '\r' that ends a read is held back (in
// buf[w], not yet part of the input) until the next byte tells which it is.
func (s *scanner) fill() bool {
	if s.err != nil {
		return false // nothing is held back once src has failed or ended
	}
	held := 0
	if s.heldCR {
		held = 1
	}
	keep := s.r
	if s.mark >= 0 && s.mark < keep {
		keep = s.mark
	}
	if keep > 0 {
		n := copy(s.buf, s.buf[keep:s.w+held])
		s.r -= keep
		s.w = n - held
		if s.mark >= 0 {
			s.mark -= keep
		}
	}
	w0 := s.w
	for range 100 { // io.Reader may return 0, nil a few times
		if s.w+held == len(s.buf) {
			nb := make([]byte, 2*len(s.buf))
			copy(nb, s.buf[:s.w+held])
			s.buf = nb
		}
		n, err := s.src.Read(s.buf[s.w+held:])
		if err != nil {
			s.err = err
		}
		s.w, s.heldCR = lineEnds(s.buf, s.w, s.w+held+n, err == nil)
		held = 0
		if s.heldCR {
			held = 1
		}
		if s.w > w0 {
			return true
		}
		if err != nil {
			return false
		}
	}
	s.err = io.ErrNoProgress
	return false
}

// lineEnds turns each lone '\r' of buf[from:end] into '\n' and returns the
// end of the bytes ready. When more input may follow, a '\r' at the end is
// not ready: it is left in buf[end-1] and reported held.
func lineEnds(buf []byte, from, end int, more bool) (int, bool) {
	for i := from; ; i++ {
		j := bytes.IndexByte(buf[i:end], '\r')
		if j < 0 {
			return end, false
		}
		i += j
		switch {
		case i+1 < end:
			if buf[i+1] != '\n' {
				buf[i] = '\n'
			}
		case more:
			return i, true
		default:
			buf[i] = '\n'
			return end, false
		}
	}
}

// peek returns the next byte without consuming it.
func (s *scanner) peek() (byte, bool) {
	if s.r == s.w && !s.fill() {
		return 0, false
	}
	return s.buf[s.r], true
}

// skipBOM drops a UTF-8 byte order mark at the very start.
func (s *scanner) skipBOM() {
	for s.w-s.r < 3 && s.fill() {
	}
	if bytes.HasPrefix(s.buf[s.r:s.w], []byte("\xef\xbb\xbf")) {
		s.r += 3
	}
}

// firstLine returns (without consuming) the first line of the unread input,
// up to limit bytes, without its line break.
func (s *scanner) firstLine(limit int) []byte {
	for {
		if i := bytes.IndexByte(s.buf[s.r:s.w], '\n'); i >= 0 {
			return bytes.TrimSuffix(s.buf[s.r:s.r+i], []byte("\r"))
		}
		if s.w-s.r >= limit || !s.fill() {
			end := min(s.w, s.r+limit)
			return bytes.TrimSuffix(s.buf[s.r:end], []byte("\r"))
		}
	}
}

// isBlank reports whether c is a space that a blank line may hold (the
// delimiter is never blank: a line of tabs in a TSV file is a record).
func (s *scanner) isBlank(c byte) bool {
	return (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') && (s.noDelim || c != s.delim)
}

// next scans the next record into r, keeping field col (all fields when col
// < 0). Blank lines are skipped. It returns false at the end of the input.
func (s *scanner) next(r *rec, col int) bool {
	for {
		*r = rec{val: r.val[:0], line: r.line[:0], all: r.all[:0]}
		// Leading blanks are kept as the start of the first field, unless
		// the line turns out to hold nothing else.
		n := 0
		for {
			c, ok := s.peek()
			if !ok || !s.isBlank(c) {
				break
			}
			r.keep(col, 0, s.buf[s.r:s.r+1], s.maxField)
			r.addLine(s.buf[s.r : s.r+1])
			s.r++
			n++
		}
		c, ok := s.peek()
		if !ok {
			return false
		}
		if c == '\n' {
			s.r++
			continue
		}
		s.record(r, col, n > 0)
		return true
	}
}

// record scans one non-blank record. started says the first field already
// has bytes (leading blanks), so a quote there is text.
func (s *scanner) record(r *rec, col int, started bool) {
	for field := 0; ; field++ {
		r.fields = field + 1
		if col < 0 && field == MaxFields {
			// A header past the limit is refused: no need to read on.
			return
		}
		var end byte
		if c, _ := s.peek(); c == '"' && !(started && field == 0) {
			end = s.quoted(r, col, field)
		} else {
			end = s.unquoted(r, col, field)
		}
		if end != ',' {
			return
		}
	}
}

// unquoted scans the rest of an unquoted field. It returns ',' when another
// field follows, '\n' at the end of the record.
func (s *scanner) unquoted(r *rec, col, field int) byte {
	for {
		seg := s.buf[s.r:s.w]
		i := s.indexEnd(seg)
		if i >= 0 {
			c := seg[i]
			r.keep(col, field, seg[:i], s.maxField)
			r.addLine(seg[:i+1])
			s.r += i + 1
			if c == '\n' {
				r.trimCR(col, field) // the '\r' may have come in an earlier read
				return '\n'
			}
			return ','
		}
		r.keep(col, field, seg, s.maxField)
		r.addLine(seg)
		s.r = s.w
		if !s.fill() {
			r.trimCR(col, field)
			return '\n'
		}
	}
}

// indexEnd finds the delimiter or line break that ends an unquoted field.
func (s *scanner) indexEnd(seg []byte) int {
	if s.noDelim {
		return bytes.IndexByte(seg, '\n')
	}
	for i, c := range seg {
		if c == s.delim || c == '\n' {
			return i
		}
	}
	return -1
}

// quoted scans a quoted field, the opening quote unread. Inside, "" is a
// quote and line breaks are text. The field closes with a quote followed by
// the delimiter, a line break or the end of the input. Like encoding/csv
// with LazyQuotes, another quote on the line where the field began is a
// literal quote: "John "JJ" Doe" is John "JJ" Doe. Unlike it, a field may not
// swallow the lines after it on the strength of such a quote. The record is
// malformed, and ends at the end of the line where this field began
// (scanning resumes after that line break, so later rows are not lost), when
// the field never closes; when it runs more than maxSpan bytes past its first
// line break; when a quote past its first line break is followed by other
// text (a stray opening quote, not a field that spans lines); and when a field
// that held a literal quote goes on past the end of its line.
func (s *scanner) quoted(r *rec, col, field int) byte {
	s.r++ // opening quote
	r.addLine([]byte{'"'})
	defer func() { s.mark = -1 }()
	lazy := false // a literal quote was taken
	for {
		seg := s.buf[s.r:s.w]
		q := bytes.IndexByte(seg, '"')
		text := seg
		if q >= 0 {
			text = seg[:q]
		}
		if s.mark < 0 {
			if nl := bytes.IndexByte(text, '\n'); nl >= 0 {
				s.mark = s.r + nl + 1
			}
		}
		r.addLine(text)
		if s.mark >= 0 && (lazy || s.r+len(text)-s.mark > s.maxSpan) {
			return s.malformed(r)
		}
		r.keep(col, field, text, s.maxField)
		s.r += len(text)
		if q < 0 {
			if !s.fill() {
				return s.malformed(r) // no closing quote
			}
			continue
		}
		// A quote: escaped, closing, or literal.
		s.r++
		r.addLine([]byte{'"'})
		c, ok := s.peek()
		switch {
		case !ok:
			return '\n'
		case c == '"':
			r.keep(col, field, []byte{'"'}, s.maxField)
			r.addLine([]byte{'"'})
			s.r++
		case c == '\n':
			s.r++
			return '\n'
		case c == '\r' && s.crlf():
			return '\n'
		case !s.noDelim && c == s.delim:
			r.addLine(s.buf[s.r : s.r+1])
			s.r++
			return ','
		case s.mark >= 0:
			return s.malformed(r)
		default:
			lazy = true
			r.keep(col, field, []byte{'"'}, s.maxField)
		}
	}
}

// crlf consumes "\r\n" when it comes next. (fill turns a lone '\r' into
// '\n', so a '\r' is always followed by '\n'.)
func (s *scanner) crlf() bool {
	if s.w-s.r < 2 {
		s.fill()
	}
	if s.w-s.r >= 2 && s.buf[s.r] == '\r' && s.buf[s.r+1] == '\n' {
		s.r += 2
		return true
	}
	return false
}

// malformed marks r and moves to where scanning resumes: after the first line
// break inside the bad field if it crossed one, else after the end of the
// current line.
func (s *scanner) malformed(r *rec) byte {
	r.malformed = true
	if s.mark >= 0 {
		s.r = s.mark
		return '\n'
	}
	for {
		if i := bytes.IndexByte(s.buf[s.r:s.w], '\n'); i >= 0 {
			r.addLine(s.buf[s.r : s.r+i])
			s.r += i + 1
			return '\n'
		}
		r.addLine(s.buf[s.r:s.w])
		s.r = s.w
		if !s.fill() {
			return '\n'
		}
	}
}

// keep appends b to the kept field(s) when field is the one asked for.
func (r *rec) keep(col, field int, b []byte, limit int) {
	if col < 0 {
		for len(r.all) <= field {
			r.all = append(r.all, nil)
		}
		r.all[field] = appendMax(r.all[field], b, limit, &r.long)
		return
	}
	if field == col {
		r.val = appendMax(r.val, b, limit, &r.long)
	}
}

// trimCR drops the '\r' that ended the input after the last field.
func (r *rec) trimCR(col, field int) {
	if col < 0 && field < len(r.all) {
		r.all[field] = bytes.TrimSuffix(r.all[field], []byte("\r"))
	} else if field == col {
		r.val = bytes.TrimSuffix(r.val, []byte("\r"))
	}
}

// addLine keeps the first bytes of the record's first line.
func (r *rec) addLine(b []byte) {
	if r.lineDone {
		return
	}
	i := bytes.IndexByte(b, '\n')
	if i >= 0 {
		b = b[:i]
	}
	if room := maxLineKept - len(r.line); room > 0 {
		r.line = append(r.line, b[:min(len(b), room)]...)
	}
	if i >= 0 {
		r.line = bytes.TrimSuffix(r.line, []byte("\r"))
		r.lineDone = true
	}
}

func appendMax(dst, b []byte, limit int, long *bool) []byte {
	if room := limit - len(dst); len(b) > room {
		*long = true
		return append(dst, b[:max(room, 0)]...)
	}
	return append(dst, b...)
}
