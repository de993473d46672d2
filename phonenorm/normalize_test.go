package phonenorm

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nyaruka/phonenumbers"

	"github.com/capcheck/capcheck/internal/numgen"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	type out struct {
		E164   string
		Key    uint64
		Reason string
	}
	tests := []struct {
		name, region, input string
		want                out
	}{
		{"e164", "IN", "+919876543210", out{"+919876543210", 919876543210, ""}},
		{"national with default region", "IN", "98765 43210", out{"+919876543210", 919876543210, ""}},
		{"trunk prefix", "IN", "098765-43210", out{"+919876543210", 919876543210, ""}},
		{"digits with country code", "IN", "919876543210", out{"+919876543210", 919876543210, ""}},
		{"other region", "IN", "+1 (415) 555-2671", out{"+14155552671", 14155552671, ""}},
		{"lower-case region", "us", "(415) 555-2671", out{"+14155552671", 14155552671, ""}},
		{"italian leading zero", "IT", "06 6982 1234", out{"+390669821234", 390669821234, ""}},
		{"uk", "GB", "07911 123456", out{"+447911123456", 447911123456, ""}},
		{"spaces trimmed", "IN", "\t +919876543210 \r", out{"+919876543210", 919876543210, ""}},
		{"empty", "IN", "", out{"", 0, ReasonMissing}},
		{"spaces only", "IN", "   ", out{"", 0, ReasonMissing}},
		{"letters", "IN", "n/a", out{"", 0, ReasonInvalid}},
		{"too short", "IN", "12345", out{"", 0, ReasonInvalid}},
		{"invalid pattern", "IN", "+1 123 456 7890", out{"", 0, ReasonInvalid}},
		{"too long", "IN", "+91" + strings.Repeat("9", 70), out{"", 0, ReasonInvalid}},
		{"not utf-8", "IN", "\xff\xfe98765", out{"", 0, ReasonInvalid}},
		{"unknown region, no plus", "ZZ", "9876543210", out{"", 0, ReasonInvalid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := Normalize(tt.input, tt.region)
			if diff := cmp.Diff(tt.want, out{r.E164, r.Key, r.Reason}); diff != "" {
				t.Errorf("Normalize(%q) (-want +got):\n%s", tt.input, diff)
			}
		})
	}
}

// TestNormalizeMatchesFormat checks the allocation-free E.164 formatting and
// the fast path against the library's own Parse/IsValidNumber/Format.
func TestNormalizeMatchesFormat(t *testing.T) {
	t.Parallel()
	inputs := append(numgen.Sample(2000, 1), "06 6982 1234", "+39 06 6982 1234", "+39 0 1", "1", "12", "a1b2", "+", "++91 98765 43210")
	for _, in := range inputs {
		r := Normalize(in, "IN")
		e, reason := r.E164, r.Reason
		want := ""
		if num, err := phonenumbers.Parse(strings.TrimSpace(in), "IN"); err == nil && phonenumbers.IsValidNumber(num) {
			want = phonenumbers.Format(num, phonenumbers.E164)
		}
		if e != want {
			t.Errorf("Normalize(%q) = %q (%s), library says %q", in, e, reason, want)
		}
	}
}

// TestNormalizeLibrary checks which values the fast path leaves to the
// library: the outcome is the library's either way.
func TestNormalizeLibrary(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"+91 98765 43210":      false,
		"098765-43210":         false,
		"(415) 555-2671":       false,
		"12345":                false,
		"":                     false, // missing: no parser at all
		"n/a":                  false, // no two digits: no parser at all
		"1-800-FLOWERS":        true,
		"+1 415 555 2671 x12":  true,
		"+91 98765 4321\uFF10": true,
	} {
		if got := Normalize(in, "IN").Library; got != want {
			t.Errorf("Normalize(%q).Library = %v, want %v", in, got, want)
		}
	}
}

func TestDigitsKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]uint64{
		"":                 0,
		"1":                1,
		"919876543210":     919876543210,
		"999999999999999":  999999999999999,
		"9999999999999999": 0, // 16 digits: not E.164
		"12a":              0,
	} {
		if got := digitsKey([]byte(in)); got != want {
			t.Errorf("digitsKey(%q) = %d, want %d", in, got, want)
		}
	}
}

func BenchmarkNormalize(b *testing.B) {
	inputs := numgen.Sample(4096, 7)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		Normalize(inputs[i%len(inputs)], "IN")
	}
}

// BenchmarkNormalizeLibrary is the plain Parse/IsValidNumber/Format path, to
// show what Normalize saves.
func BenchmarkNormalizeLibrary(b *testing.B) {
	inputs := numgen.Sample(4096, 7)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		num, err := phonenumbers.Parse(strings.TrimSpace(inputs[i%len(inputs)]), "IN")
		if err == nil && phonenumbers.IsValidNumber(num) {
			_ = phonenumbers.Format(num, phonenumbers.E164)
		}
	}
}
