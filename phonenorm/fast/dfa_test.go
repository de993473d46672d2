package fast

import (
	"math/rand/v2"
	"regexp"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// TestDFAMatchesRegexp runs every pattern of the metadata through its
// automaton and through Go's regexp, as the library compiles it, on strings
// of the pattern's language, near misses and random digits.
func TestDFAMatchesRegexp(t *testing.T) {
	t.Parallel()
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, m := range coll.GetMetadata() {
		for _, d := range []*phonenumbers.PhoneNumberDesc{m.GetGeneralDesc(), m.GetFixedLine(), m.GetMobile(),
			m.GetTollFree(), m.GetPremiumRate(), m.GetSharedCost(), m.GetPersonalNumber(),
			m.GetVoip(), m.GetPager(), m.GetUan(), m.GetVoicemail()} {
			patterns = append(patterns, d.GetNationalNumberPattern())
		}
		patterns = append(patterns, m.GetLeadingDigits(), m.GetNationalPrefixForParsing(), m.GetInternationalPrefix())
	}
	// Assertions the automaton resolves at either end of the input.
	patterns = append(patterns, `([2-9]\d{6})$|1`, `^1|2$`, `$`, `^`, `1?$2`, `(12)?$|3`)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range patterns {
		a, err := compileDFA(p)
		if err != nil {
			t.Errorf("compileDFA(%q): %v", p, err)
			continue
		}
		full := regexp.MustCompile("^(?:" + p + ")$")
		prefix := regexp.MustCompile("^(?:" + p + ")")
		gen := parseGen(p)
		for i := range 300 {
			var s []byte
			if gen != nil && i%3 != 0 {
				s = xeger(nil, rng, gen)
				if i%3 == 2 && len(s) > 0 {
					s[rng.IntN(len(s))] = byte('0' + rng.IntN(10))
				}
			} else {
				for range rng.IntN(19) {
					s = append(s, byte('0'+rng.IntN(10)))
				}
			}
			if !allDigits(string(s)) {
				continue // "NA", the metadata's "no numbers": never run on digits
			}
			if got, want := a.matchFull(s) != 0, full.Match(s); got != want {
				t.Errorf("pattern %q, whole %q: automaton %v, regexp %v", p, s, got, want)
			}
			if got, want := a.matchPrefix(s) != 0, prefix.Match(s); got != want {
				t.Errorf("pattern %q, prefix of %q: automaton %v, regexp %v", p, s, got, want)
			}
		}
	}
}

func TestDFAMask(t *testing.T) {
	t.Parallel()
	a, err := compileDFA(`\d{3}`, `12\d`, `NA`, ``)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		in           string
		full, prefix uint32
	}{
		{"123", 0b0011, 0b1011},
		{"923", 0b0001, 0b1001},
		{"12", 0, 0b1000},
		{"", 0b1000, 0b1000},
		{"1234", 0, 0b1011},
	} {
		if got := a.matchFull([]byte(tt.in)); got != tt.full {
			t.Errorf("matchFull(%q) = %04b, want %04b", tt.in, got, tt.full)
		}
		if got := a.matchPrefix([]byte(tt.in)); got != tt.prefix {
			t.Errorf("matchPrefix(%q) = %04b, want %04b", tt.in, got, tt.prefix)
		}
	}
	if _, err := compileDFA(`\b1`); err == nil {
		t.Error(`compileDFA(\b1): no error, want one (word boundaries are not digits' business)`)
	}
}
