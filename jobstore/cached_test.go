package jobstore

import (
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/capstore"
)

func TestCachedRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Unix(1_700_000_000, 0).UTC()
	c := CachedBlob{Through: 12, Numbers: []CachedNumber{
		{Entry: Entry{Row: 1, Number: "+919876543210", Input: "+919876543210"}, Known: capstore.Record{Capability: capstore.Capable, At: at}},
		{Entry: Entry{Row: 4, Number: "+919876543211", Input: "+91 98765 43211"}, Known: capstore.Record{Capability: capstore.NotCapable, At: at}},
		{Entry: Entry{Row: 5, Number: "+919876543212", Input: "+91 98765 43212"}, Known: capstore.Record{Capability: capstore.Rejected, At: at, Reason: 3}},
		{Entry: Entry{Row: 9, Number: "+14155550123", Input: "call x"}, Known: capstore.Record{Capability: capstore.Capable, At: at}},
	}}
	b, err := EncodeCached(c)
	if err != nil {
		t.Fatal(err)
	}
	// The bytes stay those earlier versions wrote: blobs of jobs enqueued
	// before are read by finalize, export and a resumed enqueue.
	const want = "010c2f020401062b022005200501eac5a8e7e21a0003ebc5a8e7e21a0201ecc5a8e7e21a0204ab9bf2dd3409" +
		"63616c6c20780180e2cfaa060280e2cfaa060480e2cfaa06030180e2cfaa06"
	if h := hex.EncodeToString(b); h != want {
		t.Errorf("EncodeCached = %s, want %s", h, want)
	}
	got, err := DecodeCached(b)
	if err != nil || !cmp.Equal(got, c) {
		t.Errorf("DecodeCached = %+v, %v, want %+v", got, err, c)
	}
}

func BenchmarkEncodeCached(b *testing.B) {
	at := time.Unix(1_700_000_000, 0).UTC()
	c := CachedBlob{Numbers: make([]CachedNumber, 9000)}
	for i := range c.Numbers {
		n := strconv.Itoa(9_100_000_000 + i*7919)
		input := "+91 " + n[2:6] + " " + n[6:]
		if i%3 == 0 {
			input = "+91" + n[2:]
		}
		c.Numbers[i] = CachedNumber{Entry: Entry{Row: int64(i*10 + 1), Number: "+91" + n[2:], Input: input},
			Known: capstore.Record{Capability: capstore.Capable, At: at}}
	}
	c.Through = int64(len(c.Numbers) * 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeCached(c); err != nil {
			b.Fatal(err)
		}
	}
}
