package report

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// prefixDigits is how many leading digits of an E.164 number (country code
// included) a Tally groups by before it asks libphonenumber's carrier data
// for the operator: one lookup per prefix, not per number.
const prefixDigits = 6

// maxGroups bounds the countries and operators a report lists.
const maxGroups = 40

// Tally counts a job's numbers for its report as results.csv is written:
// one map update per number, so it adds little to that pass.
type Tally struct {
	results  RunCounts
	caps     RunCounts
	prefixes map[uint64]*prefixCount
	// byPrefix indexes prefixes (+1) by a number's first prefixDigits
	// digits: an array lookup per number instead of a map's.
	byPrefix []int32
	list     []*prefixCount
	cbSecs   map[int64]int64
	last     int64
}

type prefixCount struct {
	sample string // a number of the prefix, for the carrier lookup
	g      Group
}

// RunCounts counts strings in M, a run of the same one with one map
// update: a batch's numbers share their status, so a pass over a job's
// numbers makes a map update per batch instead of per number. Read M
// through Map.
type RunCounts struct {
	M    map[string]int64
	last string
	n    int64 // of last, not yet in M
}

// Add counts s once.
func (c *RunCounts) Add(s string) {
	if c.n > 0 && s == c.last {
		c.n++
		return
	}
	c.flush()
	c.last, c.n = s, 1
}

func (c *RunCounts) flush() {
	if c.n > 0 {
		c.M[c.last] += c.n
		c.n = 0
	}
}

// Map returns M with every count added.
func (c *RunCounts) Map() map[string]int64 {
	c.flush()
	return c.M
}

// NewTally returns an empty Tally.
func NewTally() *Tally {
	return &Tally{results: RunCounts{M: map[string]int64{}}, caps: RunCounts{M: map[string]int64{}},
		prefixes: map[uint64]*prefixCount{}, cbSecs: map[int64]int64{}}
}

// Add counts one number of results.csv: its E.164 form, status,
// capability (empty when none), the callback's time (Unix s, 0 when none)
// and the API answer's time (Unix ms, 0 when none).
func (t *Tally) Add(number, status, capability string, capAt, checkedMs int64) {
	t.results.Add(status)
	t.last = max(t.last, checkedMs)
	if capability != "" {
		t.caps.Add(capability)
	}
	if capAt > 0 {
		t.cbSecs[capAt]++
	}
	var key uint64
	n := 0
	for i := 1; i < len(number) && n < prefixDigits; i++ {
		if c := number[i]; c >= '0' && c <= '9' {
			key = key*10 + uint64(c-'0')
			n++
		}
	}
	var p *prefixCount
	if n == prefixDigits {
		if t.byPrefix == nil {
			t.byPrefix = make([]int32, pow10(prefixDigits))
		}
		if k := t.byPrefix[key]; k > 0 {
			p = t.list[k-1]
		} else {
			p = &prefixCount{sample: number}
			t.list = append(t.list, p)
			t.byPrefix[key] = int32(len(t.list))
			t.prefixes[key*10+uint64(n)] = p
		}
	} else {
		key = key*10 + uint64(n) // two prefixes of different lengths differ
		if p = t.prefixes[key]; p == nil {
			p = &prefixCount{sample: number}
			t.prefixes[key] = p
		}
	}
	count(&p.g, status, capability)
}

func count(g *Group, status, capability string) {
	g.Numbers++
	switch status {
	case "accepted":
		g.Accepted++
	case "cached":
		g.Cached++
	}
	switch capability {
	case "capable":
		g.Capable++
	case "not_capable":
		g.NotCapable++
	case "no_callback":
		g.NoCallback++
	case "unknown":
		g.Unknown++
	}
}

func (g *Group) add(o Group) {
	g.Numbers += o.Numbers
	g.Accepted += o.Accepted
	g.Cached += o.Cached
	g.Capable += o.Capable
	g.NotCapable += o.NotCapable
	g.NoCallback += o.NoCallback
	g.Unknown += o.Unknown
}

// Numbers returns what the Tally counted, grouped by country calling code
// and by operator (libphonenumber's carrier data: a guess, since numbers
// are ported), the callbacks bucketed as the job's series are from t0
// (Unix s; the first callback when 0).
func (t *Tally) Numbers(t0 int64) *Numbers {
	n := &Numbers{Results: t.results.Map(), LastChecked: t.last}
	if caps := t.caps.Map(); len(caps) > 0 {
		n.Capabilities = caps
	}
	n.Callbacks = Coarsen(t.cbSecs, t0)
	countries := map[string]*Group{}
	operators := map[string]*Group{}
	lang := "en"
	for _, p := range t.prefixes {
		num, err := phonenumbers.Parse(p.sample, "")
		if err != nil {
			continue
		}
		cc := "+" + strconv.Itoa(int(num.GetCountryCode()))
		c := countries[cc]
		if c == nil {
			c = &Group{Key: cc, Name: strings.Join(phonenumbers.GetRegionCodesForCountryCode(int(num.GetCountryCode())), " ")}
			countries[cc] = c
		}
		c.add(p.g)
		name, prefix, err := phonenumbers.GetCarrierWithPrefixForNumber(num, lang)
		if err != nil || name == "" {
			name, prefix = "(no operator data)", 0
		}
		o := operators[cc+"|"+name]
		if o == nil {
			o = &Group{Key: cc, Name: name}
			operators[cc+"|"+name] = o
		}
		o.add(p.g)
		if prefix != 0 {
			if o.prefixes == nil {
				o.prefixes = map[int]bool{}
			}
			o.prefixes[prefix] = true
		}
	}
	for _, o := range operators {
		o.Prefixes = prefixList(o.prefixes)
	}
	n.ByCountry = top(countries)
	n.ByOperator = top(operators)
	if !slices.ContainsFunc(n.ByOperator, func(g Group) bool { return g.Name != "(no operator data)" }) {
		n.OperatorNote = "libphonenumber's carrier data names no operator for these numbers"
	}
	n.WrittenAt = time.Now().UnixMilli()
	return n
}

// top returns the largest groups first, at most maxGroups.
func top(m map[string]*Group) []Group {
	out := make([]Group, 0, len(m))
	for _, g := range m {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b Group) int {
		return cmp.Or(cmp.Compare(b.Numbers, a.Numbers), strings.Compare(a.Key, b.Key))
	})
	return out[:min(len(out), maxGroups)]
}

// Coarsen turns per-second counts into buckets as the job's series are
// kept (one second wide for jobstore.SeriesPoints seconds from t0, then
// doubling), in time order.
func Coarsen(perSec map[int64]int64, t0 int64) []Point {
	if len(perSec) == 0 {
		return nil
	}
	if t0 == 0 {
		t0 = int64(^uint64(0) >> 1)
		for s := range perSec {
			t0 = min(t0, s)
		}
	}
	buckets := map[[2]int64]int64{}
	for s, n := range perSec {
		age := max(s-t0, 0)
		w := int64(1)
		for age >= w*int64(seriesPoints) {
			w *= 2
		}
		buckets[[2]int64{s - age%w, w}] += n
	}
	out := make([]Point, 0, len(buckets))
	for k, n := range buckets {
		out = append(out, Point{T: k[0], W: k[1], N: n})
	}
	slices.SortFunc(out, func(a, b Point) int { return cmp.Compare(a.T, b.T) })
	return out
}

// prefixList lists up to 4 prefixes, smallest first, "+N more" after.
func prefixList(m map[int]bool) string {
	ps := make([]int, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	var b strings.Builder
	for i, p := range ps {
		if i == 4 {
			b.WriteString(" +" + strconv.Itoa(len(ps)-4) + " more")
			break
		}
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}
