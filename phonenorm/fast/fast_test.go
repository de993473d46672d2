package fast

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendE164(t *testing.T) {
	t.Parallel()
	type out struct {
		E164 string
		Res  Result
	}
	tests := []struct {
		name, region, input string
		want                out
	}{
		{"e164", "IN", "+919876543210", out{"+919876543210", Valid}},
		{"spaced", "IN", "+91 98765 43210", out{"+919876543210", Valid}},
		{"national", "IN", "98765 43210", out{"+919876543210", Valid}},
		{"trunk prefix", "IN", "098765-43210", out{"+919876543210", Valid}},
		{"country code without plus", "IN", "919876543210", out{"+919876543210", Valid}},
		{"international prefix", "IN", "0044 7911 123456", out{"+447911123456", Valid}},
		{"trunk prefix after country code", "GB", "+44 (0)7911 123456", out{"+447911123456", Valid}},
		{"parentheses and dots", "US", "(415) 555.2671", out{"+14155552671", Valid}},
		{"italian leading zero", "IT", "06 6982 1234", out{"+390669821234", Valid}},
		{"carrier code", "BR", "0 21 11 91234 5678", out{"+5511912345678", Valid}},
		{"transform rule", "AR", "011 15 1234 5678", out{"+5491112345678", Valid}},
		{"local number with area code added", "AG", "460 1234", out{"+12684601234", Valid}},
		{"non-geographical", "IN", "+800 1234 5678", out{"+80012345678", Valid}},
		{"shared calling code", "GB", "+44 7924 123456", out{"+447924123456", Valid}},
		{"no such area code", "IN", "+1 123 456 7890", out{"", Invalid}},
		{"too short", "IN", "12345", out{"", Invalid}},
		{"unknown calling code", "IN", "+999 123 456", out{"", Invalid}},
		{"too short after the international prefix", "IN", "00 91", out{"", Invalid}},
		{"letters", "IN", "1-800-FLOWERS", out{"", Unsure}},
		{"extension", "US", "(415) 555-2671 x12", out{"", Unsure}},
		{"second plus", "IN", "++919876543210", out{"", Unsure}},
		{"plus after digits", "IN", "91+9876543210", out{"", Unsure}},
		{"two digits", "IN", "12", out{"", Unsure}},
		{"full-width digit", "IN", "+91 98765 4321\uFF10", out{"", Unsure}},
		{"unknown region", "ZZ", "+919876543210", out{"", Unsure}},
		{"lower-case region", "in", "+919876543210", out{"", Unsure}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, res := New(tt.region).AppendE164(nil, tt.input)
			if diff := cmp.Diff(tt.want, out{string(e), res}); diff != "" {
				t.Errorf("AppendE164(%q) (-want +got):\n%s", tt.input, diff)
			}
			check(t, New(tt.region), tt.input, tt.region)
		})
	}
}

func TestAppendE164Appends(t *testing.T) {
	t.Parallel()
	dst := []byte("x,")
	got, res := New("IN").AppendE164(dst, "098765 43210")
	if string(got) != "x,+919876543210" || res != Valid {
		t.Errorf("AppendE164 = %q, %v; want %q, valid", got, res, "x,+919876543210")
	}
	got, res = New("IN").AppendE164(dst, "12345")
	if string(got) != "x," || res != Invalid {
		t.Errorf("AppendE164 = %q, %v; want %q, invalid", got, res, "x,")
	}
}

func TestAppendE164Allocs(t *testing.T) {
	p := New("IN")
	buf := make([]byte, 0, 32)
	p.AppendE164(buf, benchInputs[0]) // compile the regions first
	for _, in := range benchInputs {
		p.AppendE164(buf, in)
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, in := range benchInputs {
			p.AppendE164(buf[:0], in)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendE164 allocates %v times per run of the benchmark inputs, want 0", allocs)
	}
}

func ExampleParser_AppendE164() {
	p := New("IN")
	for _, in := range []string{"098765-43210", "+1 (415) 555-2671", "12345", "98765 43210 ext. 7"} {
		e, res := p.AppendE164(nil, in)
		if res == Valid {
			fmt.Printf("%q: %v %s\n", in, res, e)
		} else {
			fmt.Printf("%q: %v\n", in, res)
		}
	}
	// Output:
	// "098765-43210": valid +919876543210
	// "+1 (415) 555-2671": valid +14155552671
	// "12345": invalid
	// "98765 43210 ext. 7": unsure
}
