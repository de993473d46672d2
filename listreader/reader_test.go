package listreader

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// readAll returns every record of input read with cfg.
func readAll(t testing.TB, input io.Reader, cfg Config) ([]Record, Format) {
	t.Helper()
	rd, err := New(input, cfg)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	var out []Record
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return out, rd.Format()
		}
		if err != nil {
			t.Fatalf("Next after %d records: %v", len(out), err)
		}
		out = append(out, rec)
	}
}

// commaFormat is the format of a CSV file with a header, its numbers in
// column col.
func commaFormat(col int, header ...string) Format {
	return Format{Delimiter: ',', Header: header, Column: col, ColumnName: header[col]}
}

// recs builds records from (input, reason) pairs numbered from row 1.
func recs(pairs ...string) []Record {
	var out []Record
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, Record{Row: int64(i/2 + 1), Input: pairs[i], Reason: pairs[i+1]})
	}
	return out
}

func TestReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    Config
		input  string
		want   []Record
		format Format
	}{
		{
			name:   "csv by header",
			input:  "name,phone\nA,+911\nB,+912\n",
			want:   recs("+911", "", "+912", ""),
			format: commaFormat(1, "name", "phone"),
		},
		{
			name:   "no final line break, CRLF",
			input:  "name,phone\r\nA,+911\r\nB,+912",
			want:   recs("+911", "", "+912", ""),
			format: commaFormat(1, "name", "phone"),
		},
		{
			name:   "CR at the very end",
			input:  "phone\r\n+911\r",
			want:   recs("+911", ""),
			format: commaFormat(0, "phone"),
		},
		{
			name:   "BOM and blank lines",
			input:  "\xef\xbb\xbf\n  \r\nphone,name\n\n+911,A\n \t \n+912,B\n\n",
			want:   recs("+911", "", "+912", ""),
			format: commaFormat(0, "phone", "name"),
		},
		{
			name:   "quoted commas, newlines and quotes",
			input:  "id,\"Phone, mobile\",note\n1,\"+91 98765, 43210\",\"a\nb\"\n2,\"say \"\"hi\"\"\",\"x,\r\ny\"\n3,+913,\n",
			want:   recs("+91 98765, 43210", "", `say "hi"`, "", "+913", ""),
			format: commaFormat(1, "id", "Phone, mobile", "note"),
		},
		{
			name:   "ragged rows and empty values",
			input:  "a,b,phone\n1,2,+911\n1,2\n1,2,,4\n1,2,  \n1,2,+915,extra,more\n",
			want:   recs("+911", "", "", ReasonMissing, "", ReasonMissing, "  ", ReasonMissing, "+915", ""),
			format: commaFormat(2, "a", "b", "phone"),
		},
		{
			name:   "semicolons",
			input:  "name;mobile_no;city\nA, B;+911;X\n",
			want:   recs("+911", ""),
			format: Format{Delimiter: ';', Header: []string{"name", "mobile_no", "city"}, Column: 1, ColumnName: "mobile_no"},
		},
		{
			name:   "tabs",
			input:  "name\tMSISDN\tcity\nA, B\t+911\tX;Y\n",
			want:   recs("+911", ""),
			format: Format{Delimiter: '\t', Header: []string{"name", "MSISDN", "city"}, Column: 1, ColumnName: "MSISDN"},
		},
		{
			name:   "pipes, delimiter in a quoted header",
			input:  "\"a,b,c\"|Number|x\n1|+911|2\n",
			want:   recs("+911", ""),
			format: Format{Delimiter: '|', Header: []string{"a,b,c", "Number", "x"}, Column: 1, ColumnName: "Number"},
		},
		{
			name:   "configured delimiter",
			cfg:    Config{Delimiter: ';'},
			input:  "phone,x;y\n+911,2;3\n",
			want:   recs("+911,2", ""),
			format: Format{Delimiter: ';', Header: []string{"phone,x", "y"}, ColumnName: "phone,x"},
		},
		{
			name:   "plain text",
			input:  "+91 98765 43210\n\n09876543210\r\nn/a\n\"+911\"\n",
			want:   recs("+91 98765 43210", "", "09876543210", "", "n/a", "", "+911", ""),
			format: Format{Plain: true},
		},
		{
			name:   "plain text with column 1",
			cfg:    Config{Column: "1"},
			input:  "9876543210\n9876543211\n",
			want:   recs("9876543210", "", "9876543211", ""),
			format: Format{Plain: true},
		},
		{
			name:   "plain text whose first number is mistyped",
			input:  "+91 98765 4321O\n9876543210\n",
			want:   recs("+91 98765 4321O", "", "9876543210", ""),
			format: Format{Plain: true},
		},
		{
			name:   "single column with a header with a date",
			input:  "Mobile (as of 01/12/2024)\n9876543210\n",
			want:   recs("9876543210", ""),
			format: commaFormat(0, "Mobile (as of 01/12/2024)"),
		},
		{
			name:   "single column with a header that has a few digits",
			input:  "phone 2024\n9876543210\n",
			want:   recs("9876543210", ""),
			format: commaFormat(0, "phone 2024"),
		},
		{
			name:   "UTF-16 little-endian with its BOM (Excel's Unicode Text)",
			input:  utf16le("name\tmobile\r\nA\t+91 98765 43210\r\nB\t9876543211\r\n"),
			want:   recs("+91 98765 43210", "", "9876543211", ""),
			format: Format{Delimiter: '\t', Header: []string{"name", "mobile"}, Column: 1, ColumnName: "mobile"},
		},
		{
			name:   "UTF-16 big-endian plain text",
			input:  utf16be("9876543210\n9876543211\n"),
			want:   recs("9876543210", "", "9876543211", ""),
			format: Format{Plain: true},
		},
		{
			name:   "single column with a header",
			input:  "msisdn\n9876543210\n",
			want:   recs("9876543210", ""),
			format: commaFormat(0, "msisdn"),
		},
		{
			name:   "empty input",
			input:  "",
			format: Format{Plain: true},
		},
		{
			name:   "header only",
			input:  "phone,name\r\n",
			format: commaFormat(0, "phone", "name"),
		},
		{
			name:   "not UTF-8 in other columns and in the number",
			input:  "name,phone\n\xff\xfe\xe9,+911\nx,+91\xff\n",
			want:   recs("+911", "", "+91\xff", ""),
			format: commaFormat(1, "name", "phone"),
		},
		{
			name:   "bare quotes in unquoted fields are text",
			input:  "name,phone\nJohn \"Jo\" Doe,+911\nx,12\"3\n",
			want:   recs("+911", "", "12\"3", ""),
			format: commaFormat(1, "name", "phone"),
		},
		{
			name:   "leading space then quote is text",
			input:  "phone,name\n \"+911\",a\n",
			want:   recs(" \"+911\"", ""),
			format: commaFormat(0, "phone", "name"),
		},
		{
			name: "stray quote does not eat later rows",
			input: "phone,name\n+911,\"Bob\n+912,Alice\n+913,\"Carol\"\n" +
				"\"+914,Dan\n+915,Eve\n",
			want: recs(
				"+911,\"Bob", ReasonMalformed,
				"+912", "",
				"+913", "",
				"\"+914,Dan", ReasonMalformed,
				"+915", "",
			),
			format: commaFormat(0, "phone", "name"),
		},
		{
			name:   "text after a closing quote",
			input:  "phone,name\n\"+911\"x,a\n+912,b\n",
			want:   recs("\"+911\"x,a", ReasonMalformed, "+912", ""),
			format: commaFormat(0, "phone", "name"),
		},
		{
			name:   "unclosed quote at the end",
			input:  "phone,name\n+911,a\n+912,\"b",
			want:   recs("+911", "", "+912,\"b", ReasonMalformed),
			format: commaFormat(0, "phone", "name"),
		},
		{
			name:   "unclosed quote over several lines at the end",
			input:  "phone,name\n+911,\"a\n+912,b\n+913,c\n",
			want:   recs("+911,\"a", ReasonMalformed, "+912", "", "+913", ""),
			format: commaFormat(0, "phone", "name"),
		},
		{
			name:   "multi-line field then a stray quote on its last line",
			input:  "phone,name,note\n+911,\"a\nb\",\"c\"d\n+912,x,y\n",
			want:   recs("+911,\"a", ReasonMalformed, "+912", ""),
			format: commaFormat(0, "phone", "name", "note"),
		},
		{
			name:   "CR-only line ends (old Mac, Excel CSV Macintosh)",
			input:  "name,phone\rA,+911\r\r  \rB,\"+912\"\rC,\"x\ry\"\rD,+914",
			want:   recs("+911", "", "+912", "", "x\ny", "", "+914", ""),
			format: commaFormat(1, "name", "phone"),
		},
		{
			name:   "CR-only plain text",
			input:  "\r+91 98765 43210\r\r09876543210\rn/a\r",
			want:   recs("+91 98765 43210", "", "09876543210", "", "n/a", ""),
			format: Format{Plain: true},
		},
		{
			name:   "CR-only, semicolons sniffed from the first line only",
			input:  "phone;name\r+911;a,b,c,d\r",
			want:   recs("+911", ""),
			format: Format{Delimiter: ';', Header: []string{"phone", "name"}, ColumnName: "phone"},
		},
		{
			name:   "CR, CRLF and LF mixed",
			input:  "phone\r\n+911\r+912\n+913\r\n\r+914\r",
			want:   recs("+911", "", "+912", "", "+913", "", "+914", ""),
			format: commaFormat(0, "phone"),
		},
		{
			name:   "CR-only: a stray quote does not eat later rows",
			input:  "phone,name\r+911,\"Bob\r+912,Alice\r+913,\"Carol\"\r",
			want:   recs("+911,\"Bob", ReasonMalformed, "+912", "", "+913", ""),
			format: commaFormat(0, "phone", "name"),
		},
		{
			name:   "unescaped quotes inside a quoted field are text",
			input:  "name,phone\n\"John \"JJ\" Doe\",9876543210\n\"a\"b\"\"c\",\"+91 \"98765\" 43210\"\n\"x\" \",+913\r\n",
			want:   recs("9876543210", "", "+91 \"98765\" 43210", "", "+913", ""),
			format: commaFormat(1, "name", "phone"),
		},
		{
			name:   "unescaped quotes at the end of the input",
			input:  "phone,name\n+911,\"a\"b\"",
			want:   recs("+911", ""),
			format: commaFormat(0, "phone", "name"),
		},
		{
			name: "unescaped quote then a line break: the field does not eat later rows",
			input: "phone,name\n+911,\"John \"JJ\" Doe\n+912,x\"\n+913,b\n" +
				"+914,\"a\nb \"c\" d\",e\n+915,f\n",
			want: recs(
				"+911,\"John \"JJ\" Doe", ReasonMalformed,
				"+912", "",
				"+913", "",
				"+914,\"a", ReasonMalformed,
				"b \"c\" d\"", "",
				"+915", "",
			),
			format: commaFormat(0, "phone", "name"),
		},
		{
			name:   "quoted field too far past its line",
			cfg:    Config{MaxQuotedSpan: 10},
			input:  "phone,note\n+911,\"a\nbbbbbbbbbbbbbbbbbbbb\"\n+912,x\n",
			want:   recs("+911,\"a", ReasonMalformed, "bbbbbbbbbbbbbbbbbbbb\"", "", "+912", ""),
			format: commaFormat(0, "phone", "note"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, split := range []struct {
				name string
				wrap func(io.Reader) io.Reader
			}{
				{"whole", func(r io.Reader) io.Reader { return r }},
				{"bytewise", iotest.OneByteReader},
			} {
				got, format := readAll(t, split.wrap(strings.NewReader(tt.input)), tt.cfg)
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("%s: records (-want +got):\n%s", split.name, diff)
				}
				if diff := cmp.Diff(tt.format, format); diff != "" {
					t.Errorf("%s: format (-want +got):\n%s", split.name, diff)
				}
			}
		})
	}
}

func TestReaderColumn(t *testing.T) {
	t.Parallel()
	const header = "Name,Account Number,Phone Number,Mobile,x\n"
	tests := []struct {
		spec    string
		want    int
		wantErr bool
	}{
		{"", 0, true}, // Phone Number and Mobile: two phone columns, no guess
		{"mobile", 3, false},
		{"  MOBILE ", 3, false},
		{"account number", 1, false},
		{"1", 0, false},
		{"5", 4, false},
		{"6", 0, true},
		{"0", 0, true},
		{"-1", 0, true},
		{"phone", 0, true},
	}
	for _, tt := range tests {
		rd, err := New(strings.NewReader(header+"a,b,c,d,e\n"), Config{Column: tt.spec})
		if tt.wantErr {
			if !errors.Is(err, ErrColumn) {
				t.Errorf("column %q: err = %v, want ErrColumn", tt.spec, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("column %q: %v", tt.spec, err)
			continue
		}
		if got := rd.Format().Column; got != tt.want {
			t.Errorf("column %q: got index %d, want %d", tt.spec, got, tt.want)
		}
	}

	for header, want := range map[string]int{
		"id,number,msisdn\n":                        2,
		"id,Contact NUMBER,x\n":                     1,
		"WhatsApp Number,Account Number\n":          0,
		"Name,Mobile Country Code,Contact Number\n": 2,
		"id,cell_id,number\n":                       2,
		"name,phone,2023,2024\n":                    1,
		"\"id\",\"PhoneNo\",x\n":                    1,
		"order_number,tel\n":                        1,
		"id,phone_verified,mobile\n":                2,
		"id,MobileNumber\n":                         1,
		"contact\n":                                 0, // one column: no doubt
	} {
		rd, err := New(strings.NewReader(header), Config{})
		if err != nil {
			t.Fatalf("%q: %v", header, err)
		}
		if got := rd.Format().Column; got != want {
			t.Errorf("header %q: column %d, want %d", header, got, want)
		}
	}

	// No phone-like header among several: guessing would send customer IDs
	// to the API; and a first line of data is no header.
	for _, header := range []string{"id,name,city\n", "customer_id,name,contact_no\n", "Asha,+919811111111,Pune\n", "id,mobile_no,phone\n"} {
		if _, err := New(strings.NewReader(header+"1,2,3\n"), Config{}); !errors.Is(err, ErrColumn) {
			t.Errorf("header %q: err = %v, want ErrColumn", header, err)
		}
	}

	// A named column needs a header: a plain list has none.
	_, err := New(strings.NewReader("+919876543210\n"), Config{Column: "phone"})
	if !errors.Is(err, ErrColumn) {
		t.Errorf("named column on plain text: err = %v, want ErrColumn", err)
	}
}

func TestReaderGzip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.WriteString(zw, "phone\n+911\n+912\n"); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	got, format := readAll(t, bytes.NewReader(buf.Bytes()), Config{})
	if diff := cmp.Diff(recs("+911", "", "+912", ""), got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if !format.Gzip {
		t.Errorf("format.Gzip = false")
	}

	// A truncated stream is an error, not a silent end.
	rd, err := New(bytes.NewReader(buf.Bytes()[:buf.Len()-6]), Config{})
	for err == nil {
		_, err = rd.Next()
	}
	if err == io.EOF {
		t.Errorf("truncated gzip read to the end without an error")
	}
}

func TestReaderReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("phone\n+911\n+912"), iotest.ErrReader(boom))
	rd, err := New(r, Config{})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for {
		_, err = rd.Next()
		if err != nil {
			break
		}
		n++
	}
	if !errors.Is(err, boom) {
		t.Errorf("err = %v after %d records, want boom", err, n)
	}
}

func TestReaderHugeField(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 5<<20)
	input := "phone,note\n+911," + big + "\n+912,\"" + big + "\"\n" + big + ",a\n\"" + big + "\",b\n+915,c\n"
	got, _ := readAll(t, strings.NewReader(input), Config{})
	cut := big[:MaxInputLen]
	want := recs("+911", "", "+912", "", cut, ReasonInvalid, cut, ReasonInvalid, "+915", "")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// utf16le and utf16be encode s (ASCII) as UTF-16 with its byte order mark.
func utf16le(s string) string {
	b := []byte{0xff, 0xfe}
	for i := 0; i < len(s); i++ {
		b = append(b, s[i], 0)
	}
	return string(b)
}

func utf16be(s string) string {
	b := []byte{0xfe, 0xff}
	for i := 0; i < len(s); i++ {
		b = append(b, 0, s[i])
	}
	return string(b)
}
