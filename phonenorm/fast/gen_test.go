package fast

import (
	"math/rand/v2"
	"regexp/syntax"
	"sort"
	"strconv"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// The generator of the differential tests: numbers of every region and
// number type drawn from the metadata's own patterns and examples, written
// the ways people write them, with mistakes and noise.

type genEntry struct {
	id      string // region, or "001"
	cc      int
	np      string         // national prefix
	npp     *syntax.Regexp // national prefix for parsing, nil when none
	idd     *syntax.Regexp
	types   []*syntax.Regexp // general desc first, then the types with a pattern
	lengths []int32
	example []string
}

type genData struct {
	entries []*genEntry
	byID    map[string]*genEntry
	regions []string // default regions to parse with
}

var (
	genOnce sync.Once
	genAll  *genData
)

func generatorData() *genData {
	genOnce.Do(func() {
		coll, err := phonenumbers.MetadataCollection()
		if err != nil {
			panic(err)
		}
		g := &genData{byID: map[string]*genEntry{}}
		for _, m := range coll.GetMetadata() {
			e := &genEntry{id: m.GetId(), cc: int(m.GetCountryCode()), np: m.GetNationalPrefix()}
			e.npp = parseGen(m.GetNationalPrefixForParsing())
			e.idd = parseGen(m.GetInternationalPrefix())
			descs := []*phonenumbers.PhoneNumberDesc{m.GetGeneralDesc(), m.GetFixedLine(), m.GetMobile(),
				m.GetTollFree(), m.GetPremiumRate(), m.GetSharedCost(), m.GetPersonalNumber(),
				m.GetVoip(), m.GetPager(), m.GetUan(), m.GetVoicemail(), m.GetNoInternationalDialling()}
			for _, d := range descs {
				if d == nil {
					continue
				}
				if d.GetNationalNumberPattern() == "NA" {
					continue // the metadata's "no numbers of this type"
				}
				if re := parseGen(d.GetNationalNumberPattern()); re != nil {
					e.types = append(e.types, re)
				}
				if d.GetExampleNumber() != "" {
					e.example = append(e.example, d.GetExampleNumber())
				}
			}
			e.lengths = m.GetGeneralDesc().PossibleLength
			if len(e.types) > 0 {
				g.entries = append(g.entries, e)
				g.byID[e.id] = e
			}
		}
		for r := range phonenumbers.GetSupportedRegions() {
			g.regions = append(g.regions, r)
		}
		sort.Strings(g.regions)
		genAll = g
	})
	return genAll
}

func parseGen(p string) *syntax.Regexp {
	if p == "" {
		return nil
	}
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return nil
	}
	return re
}

// xeger appends a random string of re's language (digits only).
func xeger(b []byte, rng *rand.Rand, re *syntax.Regexp) []byte {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			b = append(b, byte(r))
		}
	case syntax.OpCharClass:
		var ds []byte
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := max(re.Rune[i], '0'); r <= min(re.Rune[i+1], '9'); r++ {
				ds = append(ds, byte(r))
			}
		}
		if len(ds) > 0 {
			b = append(b, ds[rng.IntN(len(ds))])
		}
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b = append(b, byte('0'+rng.IntN(10)))
	case syntax.OpCapture:
		b = xeger(b, rng, re.Sub[0])
	case syntax.OpConcat:
		for _, s := range re.Sub {
			b = xeger(b, rng, s)
		}
	case syntax.OpAlternate:
		b = xeger(b, rng, re.Sub[rng.IntN(len(re.Sub))])
	case syntax.OpQuest:
		if rng.IntN(2) == 0 {
			b = xeger(b, rng, re.Sub[0])
		}
	case syntax.OpStar, syntax.OpPlus, syntax.OpRepeat:
		lo, hi := 0, 3
		if re.Op == syntax.OpPlus {
			lo = 1
		}
		if re.Op == syntax.OpRepeat {
			lo, hi = re.Min, re.Max
			if hi < 0 {
				hi = lo + 3
			}
		}
		for range lo + rng.IntN(hi-lo+1) {
			b = xeger(b, rng, re.Sub[0])
		}
	}
	return b
}

// gen draws inputs; each goroutine needs its own.
type gen struct {
	rng *rand.Rand
	d   *genData
	b   []byte
}

func newGen(seed uint64) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1)), d: generatorData()}
}

// next returns an input and the default region to parse it with.
func (g *gen) next() (input, region string) {
	rng := g.rng
	e := g.d.entries[rng.IntN(len(g.d.entries))]
	region = e.id
	if region == "001" || rng.IntN(3) == 0 {
		region = g.d.regions[rng.IntN(len(g.d.regions))]
	}
	if rng.IntN(200) == 0 {
		region = []string{"ZZ", "001", "in", "", "XK"}[rng.IntN(5)]
	}
	nsn := g.nsn(e)
	b := g.b[:0]
	switch v := rng.IntN(20); {
	case v < 6:
		b = append(b, '+')
		b = strconv.AppendInt(b, int64(e.cc), 10)
		b = g.noisy(b, nsn)
	case v < 10:
		b = g.national(b, e, nsn)
	case v < 13:
		if rng.IntN(5) == 0 {
			o := g.d.entries[rng.IntN(len(g.d.entries))] // another region's
			if o.idd != nil {
				b = xeger(b, rng, o.idd)
			}
		} else if dm := g.d.byID[region]; dm != nil && dm.idd != nil {
			b = xeger(b, rng, dm.idd)
		} else {
			b = append(b, "00"...)
		}
		b = g.sep(b)
		b = strconv.AppendInt(b, int64(e.cc), 10)
		b = g.noisy(b, nsn)
	case v < 15:
		b = strconv.AppendInt(b, int64(e.cc), 10)
		b = g.noisy(b, nsn)
	case v < 16:
		b = append(b, '+')
		b = strconv.AppendInt(b, int64(e.cc), 10)
		b = append(b, " (0) "...)
		b = g.noisy(b, nsn)
	case v < 17:
		b = append(b, '+')
		b = g.noisy(b, g.digits(3+rng.IntN(16)))
	default:
		b = g.noisy(b, nsn)
	}
	if rng.IntN(12) == 0 {
		b = g.junk(b)
	}
	g.b = b
	return string(b), region
}

// nsn is a national significant number: from a type's pattern, an example,
// random digits of a possible length, or one of those with a mistake.
func (g *gen) nsn(e *genEntry) []byte {
	rng := g.rng
	var n []byte
	switch v := rng.IntN(10); {
	case v < 7:
		n = xeger(nil, rng, e.types[rng.IntN(len(e.types))])
	case v < 8 && len(e.example) > 0:
		n = []byte(e.example[rng.IntN(len(e.example))])
	default:
		l := 4 + rng.IntN(10)
		if len(e.lengths) > 0 && e.lengths[0] > 0 {
			l = int(e.lengths[rng.IntN(len(e.lengths))])
		}
		n = g.digits(l)
	}
	if rng.IntN(6) == 0 && len(n) > 0 {
		switch rng.IntN(3) {
		case 0:
			n[rng.IntN(len(n))] = byte('0' + rng.IntN(10))
		case 1:
			n = append(n, byte('0'+rng.IntN(10)))
		default:
			n = n[:len(n)-1]
		}
	}
	return n
}

func (g *gen) digits(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + g.rng.IntN(10))
	}
	return b
}

// national writes nsn with a national prefix, a carrier code, or none.
func (g *gen) national(b []byte, e *genEntry, nsn []byte) []byte {
	switch g.rng.IntN(5) {
	case 0:
	case 1:
		if e.npp != nil {
			b = xeger(b, g.rng, e.npp)
			break
		}
		fallthrough
	case 2:
		b = append(b, []string{"0", "1", "8", "06", "90", "00", "011", "15"}[g.rng.IntN(8)]...)
	default:
		b = append(b, e.np...)
	}
	return g.noisy(g.sep(b), nsn)
}

var seps = []string{" ", "-", ".", "/", "(", ")", "  ", " - "}

func (g *gen) sep(b []byte) []byte {
	if g.rng.IntN(3) == 0 {
		b = append(b, seps[g.rng.IntN(len(seps))]...)
	}
	return b
}

// noisy appends digits in groups, with separators and brackets between.
func (g *gen) noisy(b, digits []byte) []byte {
	rng := g.rng
	style := rng.IntN(5)
	for i, c := range digits {
		if i > 0 && style > 0 && rng.IntN(4) == 0 {
			switch style {
			case 1:
				b = append(b, ' ')
			case 2:
				b = append(b, '-')
			case 3:
				b = append(b, '.')
			default:
				b = append(b, seps[rng.IntN(len(seps))]...)
			}
		}
		b = append(b, c)
	}
	return b
}

// junk is what must go to the library: letters, extensions, other
// characters and digits, misplaced '+', leading and trailing text.
var junks = []string{
	"x", "X", "#", "*", ";", ",", "~", "a", "abc", "ext. 12", " ext 123", ";ext=45",
	" x 7", ",,3", "tel:", ";phone-context=+91", ";isub=12", "+", "++", "\uFF0B",
	"\uFF11", "\u0661", "\t", "\u00a0", "\u2010", "[", "]", "'", "\"", "_", "SMS",
	"1-800-FLOWERS", "\xff", "é", "#12", " / x12", " - 503#",
}

func (g *gen) junk(b []byte) []byte {
	j := junks[g.rng.IntN(len(junks))]
	switch g.rng.IntN(3) {
	case 0:
		return append([]byte(j), b...)
	case 1:
		return append(b, j...)
	}
	i := g.rng.IntN(len(b) + 1)
	return append(b[:i:i], append([]byte(j), b[i:]...)...)
}
