package fast

import (
	"regexp"
	"regexp/syntax"
	"strconv"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// The patterns of the validity automaton, in the order libphonenumber's
// getNumberTypeHelper tries them.
const (
	patGeneral = iota
	patPremium
	patTollFree
	patShared
	patVoip
	patPersonal
	patPager
	patUAN
	patVoicemail
	patFixed
	patMobile
	numPats
)

// Validation results of libphonenumber's testNumberLength.
const (
	lenPossible = iota
	lenLocalOnly
	lenTooShort
	lenInvalid
	lenTooLong
)

// meta is one region's (or non-geographical calling code's) metadata
// compiled for the fast path. It is built on first use.
type meta struct {
	src  *phonenumbers.PhoneMetadata
	once sync.Once
	c    *compiled // nil when the metadata did not compile: always unsure
}

type compiled struct {
	cc        int
	ccDigits  string
	valid     *dfa            // the numPats patterns, whole-input matches
	lens      [numPats]uint32 // bit n: length n allowed (isNumberPossibleForDesc)
	same      bool            // same_mobile_and_fixed_line_pattern
	possible  []int32         // general desc possible lengths
	localOnly []int32         // general desc local-only lengths
	leading   *dfa            // leading_digits, nil when none
	npp       *prefixRule     // national_prefix_for_parsing, nil when none
	transform string          // national_prefix_transform_rule
	idd       *prefixRule     // international_prefix
}

// prefixRule is a pattern matched at the start of a string of digits.
type prefixRule struct {
	gate    *dfa // does the pattern match a prefix at all
	literal bool // the pattern is one fixed string: lit, no groups
	lit     string
	re      *regexp.Regexp // the library's own regexp, for the rest
}

// get returns the compiled tables, nil when they could not be built.
func (m *meta) get() *compiled {
	if m == nil {
		return nil
	}
	m.once.Do(func() { m.c = compileMeta(m.src) })
	return m.c
}

func compileMeta(src *phonenumbers.PhoneMetadata) *compiled {
	descs := [numPats]*phonenumbers.PhoneNumberDesc{
		src.GetGeneralDesc(), src.GetPremiumRate(), src.GetTollFree(),
		src.GetSharedCost(), src.GetVoip(), src.GetPersonalNumber(),
		src.GetPager(), src.GetUan(), src.GetVoicemail(),
		src.GetFixedLine(), src.GetMobile(),
	}
	c := &compiled{
		cc:        int(src.GetCountryCode()),
		ccDigits:  strconv.Itoa(int(src.GetCountryCode())),
		same:      src.GetSameMobileAndFixedLinePattern(),
		transform: src.GetNationalPrefixTransformRule(),
	}
	var pats []string
	for i, d := range descs {
		if d == nil {
			return nil // the library would fail on it
		}
		pats = append(pats, d.GetNationalNumberPattern())
		c.lens[i] = lengthBits(d.PossibleLength)
	}
	var err error
	if c.valid, err = compileDFA(pats...); err != nil {
		return nil
	}
	c.possible = descs[patGeneral].PossibleLength
	c.localOnly = descs[patGeneral].PossibleLengthLocalOnly
	if len(c.possible) == 0 {
		return nil // testNumberLength would index an empty list
	}
	if ld := src.GetLeadingDigits(); ld != "" {
		if c.leading, err = compileDFA(ld); err != nil {
			return nil
		}
	}
	if p := src.GetNationalPrefixForParsing(); p != "" {
		if c.npp, err = compilePrefixRule(p, "^(?:"+p+")"); err != nil {
			return nil
		}
	}
	// An empty international prefix is a pattern too: it matches at once.
	if c.idd, err = compilePrefixRule(src.GetInternationalPrefix(), src.GetInternationalPrefix()); err != nil {
		return nil
	}
	return c
}

// lengthBits is isNumberPossibleForDesc's length test as a set: every length
// when the list is empty, else the listed ones (-1, "no numbers", is none).
func lengthBits(ls []int32) uint32 {
	if len(ls) == 0 {
		return ^uint32(0)
	}
	var b uint32
	for _, l := range ls {
		if l >= 0 && l < 32 {
			b |= 1 << l
		}
	}
	return b
}

// compilePrefixRule compiles pattern p; expr is the form the library hands
// to regexp (anchored or not).
func compilePrefixRule(p, expr string) (*prefixRule, error) {
	gate, err := compileDFA(p)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	r := &prefixRule{gate: gate, re: re}
	parsed, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return nil, err
	}
	parsed = parsed.Simplify()
	switch {
	case parsed.Op == syntax.OpEmptyMatch:
		r.literal = true
	case parsed.Op == syntax.OpLiteral && parsed.Flags&syntax.FoldCase == 0:
		r.literal, r.lit = true, string(parsed.Rune)
	}
	return r, nil
}

// registry maps the library's regions and calling codes to their metadata,
// as its own tables do.
type registry struct {
	supported map[string]bool
	byRegion  map[string]*meta
	ccs       [1000]ccInfo
	parsers   map[string]*Parser // one per supported region
	unknown   Parser             // for any other region: always unsure
}

// ccInfo is a country calling code: its regions in the library's order and
// the metadata parsing uses for it.
type ccInfo struct {
	known   bool
	main    *meta   // getMetadataForRegionOrCallingCode(cc, first region)
	regions []*meta // nil entries stand for "001" (looked up by region)
	ids     []string
}

var (
	regOnce sync.Once
	reg     *registry
)

func theRegistry() *registry {
	regOnce.Do(func() { reg = buildRegistry() })
	return reg
}

func buildRegistry() *registry {
	r := &registry{supported: phonenumbers.GetSupportedRegions(), byRegion: map[string]*meta{}}
	r.unknown.reg = r
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return r // no code is known: everything is left to the library
	}
	nonGeo := map[int]*meta{}
	for _, m := range coll.GetMetadata() {
		if m.GetId() == "001" {
			nonGeo[int(m.GetCountryCode())] = &meta{src: m}
		} else {
			r.byRegion[m.GetId()] = &meta{src: m}
		}
	}
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		if cc <= 0 || cc >= len(r.ccs) {
			continue
		}
		ids := phonenumbers.GetRegionCodesForCountryCode(cc)
		info := ccInfo{known: true, ids: ids}
		for _, id := range ids {
			info.regions = append(info.regions, r.region(id))
		}
		if len(ids) > 0 {
			if ids[0] == "001" {
				info.main = nonGeo[cc]
			} else {
				info.main = r.region(ids[0])
			}
		}
		r.ccs[cc] = info
	}
	r.parsers = make(map[string]*Parser, len(r.supported))
	for id := range r.supported {
		r.parsers[id] = &Parser{reg: r, home: r.region(id)}
	}
	return r
}

// region is the library's getMetadataForRegion.
func (r *registry) region(id string) *meta {
	if !r.supported[id] {
		return nil
	}
	return r.byRegion[id]
}
