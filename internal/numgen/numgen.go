// Package numgen makes realistic lists of phone numbers for tests and
// benchmarks: mobile numbers of several countries written the way people
// write them (E.164, spaced, national with a trunk prefix), with duplicates
// and a few invalid values mixed in.
package numgen

import (
	"math/rand/v2"
	"strconv"

	"github.com/nyaruka/phonenumbers"
)

// DefaultRegion is the region the generated national-format numbers belong
// to; read the list with it.
const DefaultRegion = "IN"

// regions and their weights: mostly the default region, some others.
var regions = []struct {
	code   string
	weight int
}{
	{"IN", 50}, {"US", 10}, {"GB", 8}, {"DE", 6}, {"BR", 6},
	{"ID", 5}, {"NG", 5}, {"FR", 4}, {"IT", 3}, {"MX", 3},
}

type template struct {
	region string
	cc     int
	prefix string // national significant number less its random tail
	tail   int    // digits drawn at random
}

var templates = func() []template {
	var ts []template
	for _, r := range regions {
		ex := phonenumbers.GetExampleNumberForType(r.code, phonenumbers.MOBILE)
		nsn := phonenumbers.GetNationalSignificantNumber(ex)
		// A long random tail keeps chance repeats rare (the duplicates
		// are DupRate's); the prefix keeps the number in a valid range.
		tail := 8
		switch r.code {
		case "US":
			tail = 6 // the exchange code must not start with 0 or 1
		case "ID", "FR":
			tail = 7
		}
		t := template{r.code, int(ex.GetCountryCode()), nsn[:len(nsn)-tail], tail}
		for range r.weight {
			ts = append(ts, t)
		}
	}
	return ts
}()

// Gen produces numbers; it is deterministic for a seed.
type Gen struct {
	rng      *rand.Rand
	seen     []string
	DupRate  float64 // share of values that repeat an earlier number
	BadRate  float64 // share of values that are not valid numbers
	maxStore int
}

// New returns a Gen with 10% duplicates and 0.5% invalid values.
func New(seed uint64) *Gen {
	return &Gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), DupRate: 0.10, BadRate: 0.005, maxStore: 1 << 16}
}

// Next returns the next value, as it would appear in a list.
func (g *Gen) Next() string {
	p := g.rng.Float64()
	switch {
	case p < g.BadRate:
		return g.bad()
	case p < g.BadRate+g.DupRate && len(g.seen) > 0:
		// The same number, maybe written differently, is still a duplicate.
		return g.seen[g.rng.IntN(len(g.seen))]
	}
	s := g.fresh()
	if len(g.seen) < g.maxStore {
		g.seen = append(g.seen, s)
	} else {
		g.seen[g.rng.IntN(len(g.seen))] = s
	}
	return s
}

// Sample returns the first n values of a Gen of seed.
func Sample(n int, seed uint64) []string {
	g := New(seed)
	out := make([]string, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func (g *Gen) fresh() string {
	t := templates[g.rng.IntN(len(templates))]
	nsn := t.prefix + digits(g.rng.Uint64(), t.tail)
	cc := strconv.Itoa(t.cc)
	switch v := g.rng.IntN(10); {
	case v < 5:
		return "+" + cc + nsn
	case v < 7:
		return "+" + cc + " " + nsn[:len(nsn)-6] + " " + nsn[len(nsn)-6:len(nsn)-3] + " " + nsn[len(nsn)-3:]
	case t.region == DefaultRegion && v < 9:
		return "0" + nsn
	case t.region == DefaultRegion:
		return nsn[:5] + " " + nsn[5:]
	default:
		return "00" + cc + nsn // international prefix as dialled from India
	}
}

func (g *Gen) bad() string {
	switch g.rng.IntN(4) {
	case 0:
		return strconv.Itoa(g.rng.IntN(100000)) // too short
	case 1:
		return "n/a"
	case 2:
		return "+1 123 " + pad6(g.rng.IntN(1_000_000))[:3] + " " + pad6(g.rng.IntN(10000))[2:] // no area code 123
	default:
		return ""
	}
}

// digits returns the last n decimal digits of v, zero-padded.
func digits(v uint64, n int) string {
	b := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b)
}

func pad6(v int) string {
	s := strconv.Itoa(v)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}
