package fast

import (
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// benchInputs are the shapes of a typical list: E.164, spaced, national
// with and without the trunk prefix, the international prefix.
var benchInputs = []string{
	"+919876543210", "+91 98765 43210", "098765-43210", "98765 43210",
	"+1 (415) 555-2671", "+44 7911 123456", "004915123456789", "+55 11 91234-5678",
	"+62 812-3456-7890", "+2348031234567", "+33 6 12 34 56 78", "+39 312 345 6789",
}

func BenchmarkAppendE164(b *testing.B) {
	p := New("IN")
	buf := make([]byte, 0, 32)
	for i := 0; b.Loop(); i++ {
		if _, res := p.AppendE164(buf[:0], benchInputs[i%len(benchInputs)]); res != Valid {
			b.Fatal(res)
		}
	}
}

func BenchmarkLibrary(b *testing.B) {
	var num phonenumbers.PhoneNumber
	for i := 0; b.Loop(); i++ {
		num.Reset()
		if err := phonenumbers.ParseToNumber(benchInputs[i%len(benchInputs)], "IN", &num); err != nil || !phonenumbers.IsValidNumber(&num) {
			b.Fatal(err)
		}
	}
}
