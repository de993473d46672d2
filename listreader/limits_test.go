package listreader

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/internal/filetest"
)

// fields returns a line of n fields: first, then empty ones.
func fields(n int, first string) string { return first + strings.Repeat(",", n-1) }

func TestReaderMaxFields(t *testing.T) {
	t.Parallel()
	// A header of MaxFields fields is read; one more is refused, naming the
	// limit.
	got, format := readAll(t, strings.NewReader(fields(MaxFields, "phone")+"\n+911\n"), Config{})
	if diff := cmp.Diff(recs("+911", ""), got); diff != "" || len(format.Header) != MaxFields {
		t.Errorf("header of %d fields: %d header fields, records (-want +got):\n%s", MaxFields, len(format.Header), diff)
	}
	_, err := New(strings.NewReader(fields(MaxFields+1, "phone")+"\n+911\n"), Config{})
	if !errors.Is(err, ErrTooManyFields) || !strings.Contains(err.Error(), strconv.Itoa(MaxFields)) {
		t.Errorf("header of %d fields: err = %v, want ErrTooManyFields naming %d", MaxFields+1, err, MaxFields)
	}

	// A record of more than MaxFields fields is malformed, reported by the
	// start of its line; the records around it are read.
	long := fields(MaxFields+1, "+913")
	input := "phone,x\n+911\n" + fields(MaxFields, "+912") + "\n" + long + "\n+914\n"
	got, _ = readAll(t, strings.NewReader(input), Config{})
	want := recs("+911", "", "+912", "", long[:256], ReasonMalformed, "+914", "")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// repeat is an io.Reader of n copies of b.
type repeat struct {
	b byte
	n int
}

func (r *repeat) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), r.n)]
	for i := range p {
		p[i] = r.b
	}
	r.n -= len(p)
	return len(p), nil
}

// TestReaderBoundedMemory reads hostile inputs, plain and gzip-compressed,
// and measures what the reader allocates: a few hundred kilobytes, however
// long the line or the field. (Before fields were capped, a header of a
// million fields took 140 MB, and 30 million 2.5 GB.) Not parallel: it
// measures the allocations of the whole process.
func TestReaderBoundedMemory(t *testing.T) {
	const n = 1_000_000
	const limit = 4 << 20
	cut := strings.Repeat("9", MaxInputLen)
	for _, tt := range []struct {
		name    string
		head    string
		fill    byte
		tail    string
		wantErr error
		want    []Record
	}{
		{"header of millions of fields", "phone", ',', "\n+911\n", ErrTooManyFields, nil},
		{"record of millions of fields", "phone\n+911\n+912", ',', "\n+913\n",
			nil, recs("+911", "", "+912"+strings.Repeat(",", 252), ReasonMalformed, "+913", "")},
		{"field of megabytes", "phone\n+911\n", '9', "\n+913\n",
			nil, recs("+911", "", cut, ReasonInvalid, "+913", "")},
		{"quoted field of megabytes", "phone\n+911\n\"", '9', "\"\n+913\n",
			nil, recs("+911", "", cut, ReasonInvalid, "+913", "")},
		{"header field of megabytes", "phone,", 'x', "\n+911\n", nil, recs("+911", "")},
	} {
		for _, gz := range []bool{false, true} {
			var src io.Reader = io.MultiReader(strings.NewReader(tt.head), &repeat{tt.fill, n}, strings.NewReader(tt.tail))
			name := tt.name
			if gz {
				name += ", gzip"
				src = bytes.NewReader(filetest.Gzip(t, src))
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			got, err := readRecords(src)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: err = %v, want %v", name, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s: records (-want +got):\n%.2000s", name, diff)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > limit {
				t.Errorf("%s: the reader allocated %d bytes, want at most %d", name, alloc, limit)
			}
		}
	}
}

// readRecords reads every record of src; the error is New's or Next's.
func readRecords(src io.Reader) ([]Record, error) {
	rd, err := New(src, Config{})
	if err != nil {
		return nil, err
	}
	var out []Record
	for {
		r, err := rd.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}
