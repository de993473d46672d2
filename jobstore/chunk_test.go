package jobstore

import (
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
	// Clean inputs cost a handful of bytes each: that is Redis memory at scale.
	clean := make([]Entry, 1000)
	for i := range clean {
		clean[i] = Entry{Row: int64(i + 1), Number: "+9198765" + string(rune('0'+i%10)) + "0000"}
		clean[i].Input = clean[i].Number[1:]
	}
	b, err = EncodeChunk(clean)
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
