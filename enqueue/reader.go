package enqueue

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Record is one data record of the input and what became of it.
type Record struct {
	Row    int64  // 1-based number of the data record: header and blank lines excluded
	Input  string // the raw text of the number's field, cut to MaxInputLen bytes; of a malformed record, its first line cut to 256 bytes
	Number string // E.164 when the number goes on; "" when the record is rejected
	Reason string // "" when the number goes on, else why not: invalid, missing, malformed, duplicate of row N
}

// MaxInputLen is how much of a field is kept as a record's Input: longer
// fields are invalid (no number is that long) and are reported cut.
const MaxInputLen = maxFieldKept

// Delimiters tried when sniffing a CSV header, in order of preference on ties.
const Delimiters = ",;\t|"

// DefaultRegionDefault is the region of numbers written without a country code.
const DefaultRegionDefault = "IN"

// MaxQuotedSpanDefault bounds how far a quoted field may run past the line it
// started on before it is taken for a stray quote.
const MaxQuotedSpanDefault = 16 << 20

// ReaderConfig says how to read an input list.
type ReaderConfig struct {
	// Column selects the CSV column holding the numbers: a header name
	// (case-insensitive) or a 1-based index. Defaults to the one column
	// whose header names a phone column best (phoneScore: "Phone",
	// "mobile_no" before "PhoneNumberMain" before "Contact Number"); the only
	// column of a one-column file; else NewReader fails rather than guess.
	Column string
	// DefaultRegion is the region used to tell whether the first line is a
	// phone number (plain text) or a header. Defaults to "IN".
	DefaultRegion string
	// Delimiter separates CSV fields. Defaults to the one of , ; tab |
	// found most often in the header line (outside quotes).
	Delimiter byte
	// MaxQuotedSpan is how many bytes a quoted field may run past the end of
	// the line it started on; beyond that the opening quote is taken for a
	// stray one, the record is malformed and reading resumes on the next
	// line. Defaults to MaxQuotedSpanDefault (16 MiB).
	MaxQuotedSpan int
}

// Format is what NewReader found out about the input.
type Format struct {
	Plain      bool     // one number per line, no header
	Gzip       bool     // the input was gzip-compressed
	Delimiter  byte     // CSV delimiter; 0 for plain text
	Header     []string // CSV header fields; nil for plain text
	Column     int      // 0-based index of the numbers' column
	ColumnName string   // its header; "" for plain text
}

// Reader streams the data records of a list: a CSV file with a header, or
// plain text with one number per line.
//
// # Telling them apart
//
// After an optional UTF-8 byte order mark and any blank lines, the first
// line decides. If it holds no letters and parses as a phone number
// (phonenumbers.Parse with the default region; validity does not matter) the
// input is plain text and that line is data row 1. Otherwise the first line is
// a CSV header; its delimiter is the one of , ; tab | that occurs most often
// in it outside quotes (a header without any is a single-column CSV).
// gzip-compressed input (by its magic bytes) is read decompressed.
//
// # Records
//
// A record is a line, or several when a quoted field holds line breaks. A
// line ends with LF, CRLF or a lone CR (old Mac files, Excel's "CSV
// (Macintosh)"); a lone CR inside a quoted field is read as LF. Lines that
// hold only spaces are skipped and not counted. Quotes follow RFC 4180 (""
// inside a quoted field is a quote), with three tolerances: a quote inside an
// unquoted field is text; inside a quoted field, a quote that is not followed
// by the delimiter, a line break or the end of the input is text too, as
// with encoding/csv's LazyQuotes ("John "JJ" Doe" is John "JJ" Doe); and a
// quoted field that is not properly closed does not swallow what follows it.
// When a quoted field never closes, or runs more than MaxQuotedSpan bytes past
// its first line break, or has a quote followed by other text past its first
// line break, or goes on past the end of a line on which it had such a quote,
// the record is reported malformed and ends at the end of the line where that
// field began: the next line is read as a new record.
//
// A record without the selected column, or with only spaces in it, is
// reported with reason missing; a field longer than MaxInputLen with reason
// invalid. Bytes that are not UTF-8 are kept as they are.
type Reader struct {
	s      *scanner
	format Format
	row    int64
	rec    rec
}

// NewReader reads the header (if any) of r and returns a Reader of its data
// records. It fails when the configured column does not exist.
func NewReader(r io.Reader, cfg ReaderConfig) (*Reader, error) {
	region := strings.ToUpper(cmp.Or(cfg.DefaultRegion, DefaultRegionDefault))
	rd := &Reader{}
	br := bufio.NewReaderSize(r, scanBufSize)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading gzip header: %w", err)
		}
		rd.format.Gzip = true
		r = zr
	} else {
		r = br
	}
	s := newScanner(r)
	s.maxSpan = cmp.Or(cfg.MaxQuotedSpan, MaxQuotedSpanDefault)
	rd.s = s
	s.skipBOM()
	skipBlankLines(s)
	if s.err != nil && s.err != io.EOF && s.r == s.w {
		return nil, fmt.Errorf("reading input: %w", s.err)
	}

	line := s.firstLine(scanBufSize)
	delim := cfg.Delimiter
	if delim == 0 {
		delim = sniffDelimiter(line)
	}
	if cfg.Column == "" || cfg.Column == "1" || len(line) == 0 {
		if looksLikeNumber(line, region) || len(line) == 0 {
			rd.format.Plain = true
			s.noDelim = true
			return rd, nil
		}
	}

	s.delim = delim
	rd.format.Delimiter = delim
	var hdr rec
	s.maxField = 1024 // header names are short; keep a long one's start
	ok := s.next(&hdr, -1)
	s.maxField = maxFieldKept
	if s.err != nil && s.err != io.EOF {
		return nil, fmt.Errorf("reading header: %w", s.err)
	}
	if !ok {
		// Nothing but blanks: an empty list.
		rd.format = Format{Plain: true, Gzip: rd.format.Gzip}
		s.noDelim = true
		return rd, nil
	}
	rd.format.Header = make([]string, hdr.fields)
	for i := range hdr.fields {
		if i < len(hdr.all) {
			rd.format.Header[i] = strings.TrimSpace(string(hdr.all[i]))
		}
	}
	col, err := selectColumn(rd.format.Header, cfg.Column)
	if err != nil {
		// No phone-like header: perhaps no header at all.
		if i := slices.IndexFunc(rd.format.Header, func(h string) bool { return isValidNumber(h, region) }); i >= 0 {
			return nil, firstLineIsData(i, rd.format.Header[i])
		}
		return nil, err
	}
	if h := rd.format.Header[col]; !strings.EqualFold(h, strings.TrimSpace(cfg.Column)) && isValidNumber(h, region) {
		// Taking a data record for a header would lose it silently.
		return nil, firstLineIsData(col, h)
	}
	rd.format.Column = col
	rd.format.ColumnName = rd.format.Header[col]
	return rd, nil
}

// Format tells how the input is being read.
func (r *Reader) Format() Format { return r.format }

// Next returns the next data record, with Reason set when the reader already
// knows it is rejected (missing, malformed, or a field too long to be a
// number). It returns io.EOF after the last one, and any read error (a
// truncated gzip stream, say) as it happens.
func (r *Reader) Next() (Record, error) {
	col := r.format.Column
	if !r.s.next(&r.rec, col) {
		return Record{}, r.endErr()
	}
	if err := r.s.err; err != nil && err != io.EOF {
		return Record{}, fmt.Errorf("reading input: %w", err)
	}
	r.row++
	rc := &r.rec
	out := Record{Row: r.row}
	switch {
	case rc.malformed:
		out.Input, out.Reason = string(rc.line), ReasonMalformed
	case rc.fields <= col:
		out.Reason = ReasonMissing
	default:
		out.Input = string(rc.val)
		if rc.long {
			out.Reason = ReasonInvalid
		} else if isSpace(rc.val) {
			out.Reason = ReasonMissing
		}
	}
	return out, nil
}

func (r *Reader) endErr() error {
	// gzip reports a bad trailer (CRC, size) as a read error.
	if err := r.s.err; err != nil && err != io.EOF {
		return fmt.Errorf("reading input: %w", err)
	}
	return io.EOF
}

// Rows returns the number of data records returned so far.
func (r *Reader) Rows() int64 { return r.row }

// skipBlankLines drops the blank lines before the first one that counts.
func skipBlankLines(s *scanner) {
	for {
		// Fill the buffer up to a line break (a lone '\r' is '\n' by now:
		// scanner.fill).
		s.firstLine(scanBufSize)
		i := bytes.IndexByte(s.buf[s.r:s.w], '\n')
		if i < 0 || !isSpace(s.buf[s.r:s.r+i]) {
			return
		}
		s.r += i + 1
	}
}

func isSpace(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

// sniffDelimiter returns the candidate delimiter found most often in line
// outside quotes; ',' when there is none.
func sniffDelimiter(line []byte) byte {
	var counts [len(Delimiters)]int
	in := false
	for _, c := range line {
		if c == '"' {
			in = !in
			continue
		}
		if !in {
			if i := strings.IndexByte(Delimiters, c); i >= 0 {
				counts[i]++
			}
		}
	}
	best := 0
	for i, n := range counts {
		if n > counts[best] {
			best = i
		}
	}
	return Delimiters[best]
}

// looksLikeNumber reports whether a first line is a phone number rather than
// a header: no letters, and phonenumbers.Parse accepts it.
func looksLikeNumber(line []byte, region string) bool {
	s := strings.TrimSpace(string(line))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "" || len(s) > MaxNumberLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c >= 'a' && c <= 'z' {
			return false
		}
	}
	_, err := phonenumbers.Parse(s, region)
	return err == nil
}

func firstLineIsData(i int, h string) error {
	return fmt.Errorf("%w: the first line looks like data, not a header (field %d is the phone number %q): "+
		"add a header line naming the columns", ErrColumn, i+1, h)
}

// isValidNumber reports whether s is a valid phone number: what no header is.
func isValidNumber(s, region string) bool {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > MaxNumberLen {
		return false
	}
	n, err := phonenumbers.Parse(s, region)
	return err == nil && phonenumbers.IsValidNumber(n)
}

// phoneWords mark a header as the numbers' column. A header that is one of
// them (or one of them and "number"/"no") wins over one that merely contains
// one as a word ("phone_verified"), which wins over "number" alone.
var phoneWords = []string{"phone", "mobile", "msisdn", "cell", "cellphone", "telephone", "tel", "whatsapp"}

// ErrColumn is wrapped by the errors of NewReader about the --column option.
var ErrColumn = errors.New("no such column")

// selectColumn returns the 0-based index of the column named by spec (a
// header name, case-insensitive, or a 1-based index), or of the first column
// that looks like a phone column when spec is empty.
func selectColumn(header []string, spec string) (int, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		if len(header) == 1 {
			return 0, nil
		}
		best, bestScore, tied := 0, 0, []string(nil)
		for i, h := range header {
			switch s := phoneScore(h); {
			case s > bestScore:
				best, bestScore, tied = i, s, []string{h}
			case s == bestScore && s > 0:
				tied = append(tied, h)
			}
		}
		switch {
		case bestScore == 0:
			return 0, fmt.Errorf("%w: no column's header looks like phone numbers (%s): pass --column NAME or N",
				ErrColumn, quoteList(header))
		case len(tied) > 1:
			return 0, fmt.Errorf("%w: several columns look like phone numbers (%s): pass --column NAME or N",
				ErrColumn, quoteList(tied))
		}
		return best, nil
	}
	for i, h := range header {
		if strings.EqualFold(h, spec) {
			return i, nil
		}
	}
	if n, err := strconv.Atoi(spec); err == nil {
		if n < 1 || n > len(header) {
			return 0, fmt.Errorf("column %d: %w: the header has %d column(s) (%s)", n, ErrColumn, len(header), quoteList(header))
		}
		return n - 1, nil
	}
	return 0, fmt.Errorf("column %q: %w: the header has %s", spec, ErrColumn, quoteList(header))
}

// phoneScore rates how surely a header names a phone column: 3 for "Phone",
// "mobile_no", "MSISDN"; 2 for a phone word among others ("phone_verified");
// 1 for "number" alone; 0 for none.
func phoneScore(header string) int {
	// Words split at anything but a letter and at camel case ("PhoneNo").
	var b strings.Builder
	prevLower := false
	for _, r := range header {
		isUpper, isLower := r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z'
		if isUpper && prevLower {
			b.WriteByte(' ')
		}
		prevLower = isLower
		b.WriteRune(r)
	}
	words := strings.FieldsFunc(strings.ToLower(b.String()), func(r rune) bool {
		return !(r >= 'a' && r <= 'z')
	})
	isPhone := func(w string) bool { return slices.Contains(phoneWords, w) }
	// A phone word next to one of these names something else about the
	// number ("Mobile Country Code", "cell_id", "phone_verified").
	other := func(w string) bool {
		return slices.Contains([]string{"id", "code", "country", "type", "operator", "circle", "verified", "status", "ok", "valid", "count"}, w)
	}
	flat := strings.Join(words, "")
	switch {
	case len(words) == 0:
		return 0
	case slices.ContainsFunc(words, other):
		return 0
	case isPhone(words[0]) && (len(words) == 1 || len(words) == 2 && slices.Contains([]string{"number", "no", "num", "nr"}, words[1])):
		return 3
	case isPhone(flat) || slices.ContainsFunc(phoneWords, func(p string) bool {
		return flat == p+"number" || flat == p+"no" || flat == p+"num"
	}):
		return 3 // "WhatsApp Number", "Tele Phone"
	case slices.ContainsFunc(words, isPhone) || slices.ContainsFunc(words, hasPhonePart):
		return 2
	case slices.ContainsFunc(words, func(w string) bool { return strings.Contains(w, "number") }):
		return 1
	}
	return 0
}

// hasPhonePart reports whether a word contains a long phone word: camel-case
// headers ("MobileNumber") come as one word.
func hasPhonePart(w string) bool {
	return strings.Contains(w, "phone") || strings.Contains(w, "mobile") || strings.Contains(w, "msisdn")
}

func quoteList(h []string) string {
	const maxShown = 20
	var b strings.Builder
	for i, s := range h {
		if i == maxShown {
			fmt.Fprintf(&b, ", ... (%d more)", len(h)-maxShown)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(s))
	}
	return b.String()
}
