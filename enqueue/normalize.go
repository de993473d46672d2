package enqueue

import (
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Reasons a data record never reaches the API. A duplicate's reason is
// "duplicate of row N" (see [DuplicateReason]).
const (
	ReasonInvalid   = "invalid"
	ReasonMissing   = "missing"
	ReasonMalformed = "malformed"
)

// MaxNumberLen is the longest trimmed value handed to the phone number parser;
// longer values are invalid without parsing (no valid number is that long, and
// parsing megabytes of text would cost a lot for nothing).
const MaxNumberLen = 64

// DuplicateReason is the reject reason of a later row whose number was first
// seen on row first.
func DuplicateReason(first int64) string {
	return "duplicate of row " + itoa(first)
}

// Normalizer turns raw values into E.164 numbers. It keeps scratch space, so
// each goroutine needs its own; the zero value is not usable, see
// [NewNormalizer].
type Normalizer struct {
	region string
	num    phonenumbers.PhoneNumber
	buf    []byte
}

// NewNormalizer returns a Normalizer that reads numbers without a country code
// as numbers of region (an ISO 3166 code such as "IN").
func NewNormalizer(region string) *Normalizer {
	return &Normalizer{region: strings.ToUpper(region), buf: make([]byte, 0, 24)}
}

// Normalize returns the E.164 form of input and its digits as an integer (the
// key for dedupe, never 0), or reason ReasonMissing (empty after trimming
// spaces) or ReasonInvalid.
func (n *Normalizer) Normalize(input string) (e164 string, key uint64, reason string) {
	s := strings.TrimSpace(input)
	if s == "" {
		return "", 0, ReasonMissing
	}
	if len(s) > MaxNumberLen || !mayBeNumber(s) {
		return "", 0, ReasonInvalid
	}
	// Parse fills only some fields, so a reused PhoneNumber must be cleared.
	n.num.Reset()
	if err := phonenumbers.ParseToNumber(s, n.region, &n.num); err != nil {
		return "", 0, ReasonInvalid
	}
	if !phonenumbers.IsValidNumber(&n.num) {
		return "", 0, ReasonInvalid
	}
	n.buf = appendE164(n.buf[:0], &n.num)
	key = digitsKey(n.buf[1:])
	if key == 0 {
		// E.164 allows 15 digits and the job store packs numbers into
		// integers of that size; libphonenumber's patterns may accept a
		// longer one in theory, which no provider would route.
		return "", 0, ReasonInvalid
	}
	return string(n.buf), key, ""
}

// mayBeNumber is a fast path for text that cannot be a number, so a column
// of names or notes costs little: libphonenumber's viability pattern needs at
// least two digits before it looks any further.
func mayBeNumber(s string) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			digits++
			if digits >= 2 {
				return true
			}
		} else if c >= 0x80 {
			// Full-width and other Unicode digits are accepted by
			// libphonenumber: leave those to the parser.
			return true
		}
	}
	return false
}

// appendE164 is phonenumbers.Format(num, E164) without its allocations:
// "+", the country code, the Italian leading zeros, the national number.
func appendE164(b []byte, num *phonenumbers.PhoneNumber) []byte {
	b = append(b, '+')
	b = appendUint(b, uint64(num.GetCountryCode()))
	if num.GetItalianLeadingZero() {
		zeros := int(num.GetNumberOfLeadingZeros())
		if zeros < 1 || zeros > 17 {
			zeros = 1 // matches Format: the count defaults to 1 when unset
		}
		for range zeros {
			b = append(b, '0')
		}
	}
	return appendUint(b, num.GetNationalNumber())
}

// digitsKey parses the digits of an E.164 number (after '+'); 0 when there
// are more than 15. The first digit is a country code digit, never 0, so two
// different numbers never share a key.
func digitsKey(d []byte) uint64 {
	if len(d) == 0 || len(d) > 15 {
		return 0
	}
	var k uint64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0
		}
		k = k*10 + uint64(c-'0')
	}
	return k
}

func appendUint(b []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

func itoa(v int64) string {
	if v < 0 {
		return "-" + string(appendUint(nil, uint64(-v)))
	}
	return string(appendUint(nil, uint64(v)))
}
