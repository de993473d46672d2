// Package fast decides, for the common ways of writing a phone number, what
// libphonenumber (github.com/nyaruka/phonenumbers) decides with
// Parse(input, region) and IsValidNumber, and the number's E.164 form,
// at a small fraction of the cost, and says when it is not sure.
//
// It follows the library's parsing steps one by one, for inputs made of
// ASCII digits, one leading '+', and the separators space, '-', '.', '(',
// ')' and '/'. The regular expressions the library runs over whole inputs
// (viability, extensions, punctuation) have a fixed outcome on such inputs;
// the metadata's patterns (number types, lengths, leading digits, national
// and international prefixes) are compiled from the library's own metadata,
// on first use of a region, into automata over digits that accept the same
// strings; the few prefix patterns with groups or transform rules still run
// the library's regular expression, on digits only. Anything else (letters,
// extensions, other characters, fewer than three digits, a second '+') is
// [Unsure]: the caller asks the library.
package fast

import "strconv"

// Result is a decision of [Parser.AppendE164].
type Result uint8

const (
	// Unsure: the input is not of a shape the fast path decides; ask
	// the library.
	Unsure Result = iota
	// Invalid: Parse fails or IsValidNumber is false.
	Invalid
	// Valid: IsValidNumber is true; the E.164 form was appended.
	Valid
)

func (r Result) String() string {
	switch r {
	case Unsure:
		return "unsure"
	case Invalid:
		return "invalid"
	case Valid:
		return "valid"
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// maxDigits is the most digits the fast path takes; longer inputs (never a
// valid number) go to the library.
const maxDigits = 32

// The library's bounds on a national significant number.
const (
	minNSN = 2
	maxNSN = 17
)

// Parser decides numbers for one default region. It holds no scratch state,
// so one Parser may be used by any number of goroutines.
type Parser struct {
	reg  *registry
	home *meta // nil when the region is unknown: always unsure
}

// New returns a Parser for numbers written without a country code in region
// (an ISO 3166 code such as "IN", as the library takes it: upper case). It
// costs a map lookup: the parsers of all regions are made once.
func New(region string) *Parser {
	r := theRegistry()
	if p := r.parsers[region]; p != nil {
		return p
	}
	return &r.unknown
}

// Warm builds the region's tables now, as the first AppendE164 would (a few
// milliseconds), so that a caller can do it while it waits for something
// else.
func (p *Parser) Warm() { p.home.get() }

// AppendE164 decides s as Parse(s, region) and IsValidNumber would, and
// appends the E.164 form to dst when the number is valid.
func (p *Parser) AppendE164(dst []byte, s string) ([]byte, Result) {
	home := p.home.get()
	if home == nil {
		return dst, Unsure
	}
	var buf [maxDigits]byte
	var nb1, nb2 [maxDigits + 8]byte // national numbers a transform rule makes
	d, plus, ok := scan(buf[:0], s)
	if !ok {
		return dst, Unsure
	}
	var (
		cc       int
		national []byte
		m        *compiled // the metadata the national prefix is read with
		res      = Valid   // Valid: go on; Invalid or Unsure: the answer
	)
	if plus {
		cc, national, res = p.extractCountryCode(d)
		if res == Valid && cc == 0 {
			// The library tries again without the '+'.
			cc, national, res = p.withoutPlus(nb1[:0], d, home)
			if res == Valid && cc == 0 {
				res = Invalid
			}
		}
	} else {
		cc, national, res = p.withoutPlus(nb1[:0], d, home)
	}
	if res != Valid {
		return dst, res
	}
	if cc == 0 {
		cc, national, m = home.cc, d, home
	} else if m = p.reg.ccs[cc].main.get(); m == nil && p.reg.ccs[cc].main != nil {
		return dst, Unsure
	}
	if len(national) < minNSN {
		return dst, Invalid
	}
	if m != nil {
		pot, res := stripNationalPrefix(nb2[:0], national, m)
		if res != Valid {
			return dst, res
		}
		switch testNumberLength(pot, m) {
		case lenTooShort, lenLocalOnly, lenInvalid:
		default:
			national = pot
		}
	}
	if len(national) < minNSN || len(national) > maxNSN {
		return dst, Invalid
	}
	if res := p.isValid(cc, national); res != Valid {
		return dst, res
	}
	dst = append(dst, '+')
	dst = strconv.AppendInt(dst, int64(cc), 10)
	return append(dst, national...), Valid
}

// scan keeps the digits of s, when s is of a shape the fast path decides:
// ASCII digits and separators, and at most one '+', before every digit.
// On such input the library's extraction, viability and extension steps
// reduce to this: at least three digits make it viable, no extension
// pattern can match, and normalizing keeps the digits.
func scan(d []byte, s string) (digits []byte, plus, ok bool) {
	started := false // a digit or '+' seen: where the library's number starts
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			if len(d) == cap(d) {
				return nil, false, false
			}
			d = append(d, c)
			started = true
		case '+':
			if started {
				return nil, false, false
			}
			plus, started = true, true
		case ' ', '-', '.', '(', ')', '/':
		default:
			return nil, false, false
		}
	}
	return d, plus, len(d) >= 3
}
