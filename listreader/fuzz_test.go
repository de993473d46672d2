package listreader

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

// fuzzSeeds are inputs that once broke the reader or nearly did.
var fuzzSeeds = []string{
	"",
	"\n\n",
	"phone\n+919876543210\n",
	"+91 98765 43210\n9876543210\r\n\r\nn/a\n",
	"\xef\xbb\xbfid,Phone Number\r\n1,\"+91 98765, 43210\"\r\n2,\"a\nb\"\r\n",
	"name;mobile\n\"x;y\";+14155552671\n;\n",
	"a\tmsisdn\n1\t+447911123456\n\t\n",
	"a|number|b\n1|+4930901820|\"x\"\"y\"\n",
	"phone,name\n+911,\"Bob\n+912,Alice\n+913,\"Carol\"\n",
	"phone,name\n\"+911\"x,a\n+912,\"b",
	"phone\n\"\"\"\n\"\n\"\"\n",
	"phone,x\n\xff\xfe,\xc3\x28\n+91\xff,1\n",
	"\x1f\x8b\x08\x00\x00\x00\x00\x00",
	"phone\n" + string(bytes.Repeat([]byte("9"), 5000)) + "\n",
	"p\r\r\n\r1\r\n",
	"name,phone\rA,+919876543210\r\rB,\"x\ry\"\r+14155552671\r",
	"+919876543210\r9876543210\r\r",
	"name,phone\n\"John \"JJ\" Doe\",9876543210\n\"a\"b\nc\",+14155552671\n\"x\"\"y\"z\",1\n",
	"phone,name\r+911,\"a \"b\" c\r+912,\"d\"\r",
}

// FuzzReader feeds arbitrary bytes to the reader: it must never panic or
// hang, rows must count 1, 2, 3..., no record may come from nothing (more
// records than lines), and old Mac line ends must read the same as LF
// however the reads are cut.
//
//	go test -fuzz FuzzReader -fuzztime 60s ./listreader/
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint16(0))
		f.Add([]byte(s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, span uint16) {
		// A hang is a bug too: make it a crash, so the fuzzer keeps the input.
		watchdog := time.AfterFunc(20*time.Second, func() { panic(fmt.Sprintf("stuck on %q", data)) })
		defer watchdog.Stop()
		cfg := Config{MaxQuotedSpan: int(span)}
		rd, err := New(bytes.NewReader(data), cfg)
		if err != nil {
			return // e.g. a corrupt gzip header: an error, not a panic
		}
		var direct []Record
		for {
			r, err := rd.Next()
			if err != nil {
				if err != io.EOF && !rd.Format().Gzip {
					t.Fatalf("read error on in-memory input: %v", err)
				}
				break
			}
			if r.Row != int64(len(direct)+1) {
				t.Fatalf("record %d has row %d", len(direct), r.Row)
			}
			if len(r.Input) > MaxInputLen && r.Reason != ReasonMalformed {
				t.Fatalf("row %d: input of %d bytes", r.Row, len(r.Input))
			}
			direct = append(direct, r)
		}
		// Lines end with LF, CRLF or a lone CR.
		lines := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n")) + 1
		if n := int64(len(direct)); n > int64(lines) && !rd.Format().Gzip {
			t.Fatalf("%d records from %d lines", n, lines)
		}
		if rd.Format().Gzip || bytes.ContainsRune(data, '\r') || !bytes.ContainsRune(data, '\n') {
			return
		}
		cr := bytes.ReplaceAll(data, []byte("\n"), []byte("\r"))
		rd, err = New(iotest.OneByteReader(bytes.NewReader(cr)), cfg)
		if err != nil {
			t.Fatalf("CR-only input: %v", err)
		}
		for i := 0; ; i++ {
			r, err := rd.Next()
			if err == io.EOF && i == len(direct) {
				break
			}
			if err != nil || i >= len(direct) || r != direct[i] {
				t.Fatalf("CR-only input, record %d: %+v, %v; with LF: %d records", i, r, err, len(direct))
			}
		}
	})
}
