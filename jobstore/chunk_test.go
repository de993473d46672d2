package jobstore

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChunkRoundTrip(t *testing.T) {
	t.Parallel()
	entries := []Entry{
		{Row: 1, Number: "+919876543210", Input: "+919876543210"},
		{Row: 2, Number: "+919876543211", Input: "919876543211"},
		{Row: 7, Number: "+14155550123", Input: "(415) 555-0123"},
		{Row: 1_000_000_007, Number: "+442071838750", Input: " +44 20 7183 8750 ,é"},
	}
	roundTrip(t, entries)
	// Clean inputs cost a handful of bytes each: that is Redis memory at scale.
	clean := make([]Entry, 1000)
	for i := range clean {
		clean[i] = Entry{Row: int64(i + 1), Number: "+9198765" + string(rune('0'+i%10)) + "0000"}
		clean[i].Input = clean[i].Number[1:]
	}
	b, err := EncodeChunk(clean)
	if err != nil {
		t.Fatal(err)
	}
	if per := float64(len(b)) / 1000; per > 9 {
		t.Errorf("clean chunk takes %.1f bytes per number, want <= 9", per)
	}
}

func TestEncodeChunkRefusesBadEntries(t *testing.T) {
	t.Parallel()
	for name, entries := range map[string][]Entry{
		"rows not increasing": {{Row: 2, Number: "+14155550123"}, {Row: 2, Number: "+14155550124"}},
		"no plus":             {{Row: 1, Number: "14155550123"}},
		"leading zero":        {{Row: 1, Number: "+04155550123"}},
		"too long":            {{Row: 1, Number: "+1234567890123456"}},
		"letters":             {{Row: 1, Number: "+1415555O123"}},
	} {
		if _, err := EncodeChunk(entries); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}

func TestDecodeChunkRefusesGarbage(t *testing.T) {
	t.Parallel()
	good, _ := EncodeChunk([]Entry{{Row: 1, Number: "+14155550123", Input: "x"}})
	for name, b := range map[string][]byte{
		"empty":      nil,
		"version":    {9, 0},
		"truncated":  good[:len(good)-1],
		"trailing":   append(append([]byte{}, good...), 0),
		"huge count": {chunkVersion, 0xff, 0xff, 0xff, 0x0f},
	} {
		if _, err := DecodeChunk(b); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}

func FuzzDecodeChunk(f *testing.F) {
	good, _ := EncodeChunk([]Entry{{Row: 3, Number: "+14155550123", Input: "(415) 555-0123"}})
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := DecodeChunk(b)
		if err != nil {
			return
		}
		again, err := EncodeChunk(entries)
		if err != nil {
			return // e.g. rows that are not increasing decode but do not encode
		}
		if _, err := DecodeChunk(again); err != nil {
			t.Fatalf("re-encoded chunk does not decode: %v", err)
		}
	})
}

// Inputs written the list's own way are stored as templates of the number's
// digits, once per chunk; every input still reads back exactly.
func TestChunkTemplates(t *testing.T) {
	t.Parallel()
	inputs := []string{
		"+91 98765 43210", "+91 98765 43211", "098765 43212", "0091-98765-43213", "(0)98765.43214",
		"9876543215 ", " 919876543216", "91 9876543217 home", "\t+919876543218", "98765432190",
		"+91 9876543210 é", "1", "", "+", "91987654321x", "0000000000000000000009876543211",
	}
	var entries []Entry
	for i, in := range inputs {
		entries = append(entries, Entry{Row: int64(i + 1), Number: "+9198765432" + fmt.Sprintf("%02d", i%100), Input: in})
	}
	entries = append(entries, Entry{Row: 100, Number: "+123456789012345", Input: "00 123456789012345"})
	roundTrip(t, entries)

	// A list of spaced and national numbers: about 9 bytes a number.
	spaced := make([]Entry, 1000)
	for i := range spaced {
		n := fmt.Sprintf("%010d", 9876000000+i*7919)
		spaced[i] = Entry{Row: int64(i + 1), Number: "+91" + n, Input: "+91 " + n[:5] + " " + n[5:]}
		if i%2 == 1 {
			spaced[i].Input = "0" + n[:5] + "-" + n[5:]
		}
	}
	if per := float64(len(roundTrip(t, spaced))) / 1000; per > 9 {
		t.Errorf("spaced and national inputs take %.1f bytes per number, want <= 9", per)
	}
}

// roundTrip encodes entries, checks that they decode to themselves, and
// returns the encoded chunk.
func roundTrip(t *testing.T, entries []Entry) []byte {
	t.Helper()
	b, err := EncodeChunk(entries)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeChunk(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(entries, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	return b
}

// Blobs of version 1 (enqueued before templates) still read.
func TestDecodeChunkVersion1(t *testing.T) {
	t.Parallel()
	b := []byte{chunkV1, 2}
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, 919876543210)
	b = binary.AppendUvarint(b, inputIsDigits)
	b = binary.AppendUvarint(b, 2)
	b = binary.AppendUvarint(b, 14155550123)
	b = binary.AppendUvarint(b, inputLiteral+3)
	b = append(b, "x y"...)
	want := []Entry{{Row: 1, Number: "+919876543210", Input: "919876543210"}, {Row: 3, Number: "+14155550123", Input: "x y"}}
	got, err := DecodeChunk(b)
	if err != nil || !cmp.Equal(got, want) {
		t.Errorf("DecodeChunk(v1) = %+v, %v", got, err)
	}
}

func FuzzChunkInput(f *testing.F) {
	f.Add("+91 98765 43210", uint64(919876543210))
	f.Add("0098765-43210", uint64(919876543210))
	f.Fuzz(func(t *testing.T, input string, n uint64) {
		n = n%999_999_999_999_999 + 1
		e := []Entry{{Row: 1, Number: "+" + strconv.FormatUint(n, 10), Input: input}}
		b, err := EncodeChunk(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeChunk(b)
		if err != nil || !cmp.Equal(got, e) {
			t.Fatalf("%q: read back %+v, %v", input, got, err)
		}
	})
}

// BenchmarkDecodeChunk decodes a chunk of 1,000 clean numbers, as a worker
// does at the start of each chunk task.
func BenchmarkDecodeChunk(b *testing.B) {
	entries := make([]Entry, 1000)
	for i := range entries {
		entries[i] = Entry{Row: int64(i + 1), Number: fmt.Sprintf("+9198%08d", i)}
		entries[i].Input = entries[i].Number
	}
	blob, err := EncodeChunk(entries)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeChunk(blob); err != nil {
			b.Fatal(err)
		}
	}
}
