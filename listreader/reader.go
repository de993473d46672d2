package listreader

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"

	"github.com/capcheck/capcheck/phonenorm"
)

// Record is one data record of the input.
type Record struct {
	Row    int64  // 1-based number of the data record: header and blank lines excluded
	Input  string // the raw text of the number's field, cut to MaxInputLen bytes; of a malformed record, its first line cut to 256 bytes
	Reason string // "" when the field is to be read as a number, else why not: ReasonMissing, ReasonMalformed, ReasonInvalid
}

// Reasons a record is rejected before its field is read as a number.
const (
	// ReasonMissing: the record has no such column, or only spaces in it.
	ReasonMissing = phonenorm.ReasonMissing
	// ReasonInvalid: the field is longer than MaxInputLen.
	ReasonInvalid = phonenorm.ReasonInvalid
	// ReasonMalformed: a quoted field is not properly closed (see Reader),
	// or the record has more than MaxFields fields.
	ReasonMalformed = "malformed"
)

// MaxInputLen is how much of a field is kept as a record's Input: longer
// fields are invalid (no number is that long) and are reported cut.
const MaxInputLen = maxFieldKept

// MaxFields is the most fields a header or a data record may have. A header
// with more is refused (ErrTooManyFields): no list has that many columns, and
// keeping them would let one line of commas, a few kilobytes compressed, take
// gigabytes. A data record with more is rejected as malformed.
const MaxFields = 1024

// ErrTooManyFields is wrapped by the error of New for a header of more than
// MaxFields fields.
var ErrTooManyFields = errors.New("too many fields")

// Delimiters tried when sniffing a CSV header, in order of preference on ties.
const Delimiters = ",;\t|"

// MaxQuotedSpanDefault bounds how far a quoted field may run past the line it
// started on before it is taken for a stray quote.
const MaxQuotedSpanDefault = 16 << 20

// Config says how to read an input list.
type Config struct {
	// Column selects the CSV column holding the numbers: a header name
	// (case-insensitive) or a 1-based index. Defaults to the one column
	// whose header names a phone column best (phoneScore: "Phone",
	// "mobile_no" before "PhoneNumberMain" before "Contact Number"); the only
	// column of a one-column file; else New fails rather than guess.
	Column string
	// DefaultRegion is the region used to tell whether the first line is a
	// phone number (plain text) or a header. Defaults to
	// phonenorm.DefaultRegionDefault ("IN").
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

// Format is what New found out about the input.
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
// A record of more than MaxFields fields is reported malformed too. A record
// without the selected column, or with only spaces in it, is reported with
// reason missing; a field longer than MaxInputLen with reason invalid. Bytes
// that are not UTF-8 are kept as they are. Memory stays bounded whatever the
// input: the reader keeps the selected field (up to MaxInputLen bytes), the
// first 256 bytes of a record's line, at most MaxQuotedSpan bytes of a quoted
// field that spans lines, and a header of at most MaxFields fields.
type Reader struct {
	s      *scanner
	format Format
	row    int64
	rec    rec
}

// New reads the header (if any) of r and returns a Reader of its data
// records. It fails when the configured column does not exist, and when the
// header has more than MaxFields fields (ErrTooManyFields).
func New(r io.Reader, cfg Config) (*Reader, error) {
	region := strings.ToUpper(cmp.Or(cfg.DefaultRegion, phonenorm.DefaultRegionDefault))
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
	r = fromUTF16(r)
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
		if looksLikeNumber(line, region) || len(line) == 0 || looksLikeMistypedNumber(line) {
			rd.format.Plain = true
			s.noDelim = true
			return rd, nil
		}
	}
	s.delim = delim
	rd.format.Delimiter = delim
	if err := rd.readHeader(cfg.Column, region); err != nil {
		return nil, err
	}
	return rd, nil
}

// readHeader reads the header line and selects the numbers' column.
func (rd *Reader) readHeader(column, region string) error {
	s := rd.s
	var hdr rec
	s.maxField = 1024 // header names are short; keep a long one's start
	ok := s.next(&hdr, -1)
	s.maxField = maxFieldKept
	if s.err != nil && s.err != io.EOF {
		return fmt.Errorf("reading header: %w", s.err)
	}
	if !ok {
		// Nothing but blanks: an empty list.
		rd.format = Format{Plain: true, Gzip: rd.format.Gzip}
		s.noDelim = true
		return nil
	}
	if hdr.fields > MaxFields {
		return fmt.Errorf("%w: the header line has more than %d fields; a list may have at most %d columns",
			ErrTooManyFields, MaxFields, MaxFields)
	}
	rd.format.Header = make([]string, hdr.fields)
	for i := range hdr.fields {
		if i < len(hdr.all) {
			rd.format.Header[i] = strings.TrimSpace(string(hdr.all[i]))
		}
	}
	col, err := selectColumn(rd.format.Header, column)
	if err != nil {
		// No phone-like header: perhaps no header at all.
		if i := slices.IndexFunc(rd.format.Header, func(h string) bool { return isValidNumber(h, region) }); i >= 0 {
			return firstLineIsData(i, rd.format.Header[i])
		}
		return err
	}
	if h := rd.format.Header[col]; !strings.EqualFold(h, strings.TrimSpace(column)) && isValidNumber(h, region) {
		// Taking a data record for a header would lose it silently.
		return firstLineIsData(col, h)
	}
	rd.format.Column = col
	rd.format.ColumnName = rd.format.Header[col]
	return nil
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
	case rc.malformed, rc.fields > MaxFields:
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

// fromUTF16 returns r decoded to UTF-8 when it starts with a UTF-16 byte
// order mark (Excel's "Unicode Text", Windows tools), else r as it is.
func fromUTF16(r io.Reader) io.Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, scanBufSize)
	}
	bom, _ := br.Peek(2)
	if len(bom) < 2 || !(bom[0] == 0xff && bom[1] == 0xfe || bom[0] == 0xfe && bom[1] == 0xff) {
		return br
	}
	return transform.NewReader(br, unicode.BOMOverride(unicode.UTF8.NewDecoder()))
}
