// Package phonenorm reads phone numbers the way the list is checked: it
// normalizes a raw value to E.164 with libphonenumber (Normalize) and keeps
// the first row of each number in a set that lives outside the Go heap (Set).
// The common ways of writing a number are decided by package fast, exactly
// as libphonenumber decides them, at a fraction of the cost; the rest goes
// to the library.
package phonenorm

import (
	"strconv"
	"strings"

	"github.com/capcheck/capcheck/phonenorm/fast"
	"github.com/nyaruka/phonenumbers"
)

// Reasons Normalize gives for a value that is not a valid number. A
// duplicate's reason is "duplicate of row N" (see [DuplicateReason]).
const (
	ReasonInvalid = "invalid"
	ReasonMissing = "missing"
)

// DefaultRegionDefault is the region of numbers written without a country code.
const DefaultRegionDefault = "IN"

// MaxNumberLen is the longest trimmed value handed to the phone number parser;
// longer values are invalid without parsing (no valid number is that long, and
// parsing megabytes of text would cost a lot for nothing).
const MaxNumberLen = 64

// Result is what Normalize makes of one value.
type Result struct {
	// E164 is the number in E.164 form ("+919876543210"); "" when the value
	// is not a valid number.
	E164 string
	// Key is E164's digits as an integer: the number's key for dedupe,
	// never 0 for a valid number, 0 otherwise.
	Key uint64
	// Reason is "" for a valid number, else ReasonMissing (nothing but
	// spaces) or ReasonInvalid.
	Reason string
	// Library is true when the value went through libphonenumber's own
	// parser because the fast path was not sure of it (statistics only:
	// the outcome is the same either way).
	Library bool
}

// Valid reports whether the value was a valid number.
func (r Result) Valid() bool { return r.Reason == "" }

// Normalize reads input as a phone number, with numbers written without a
// country code taken as numbers of region (an ISO 3166 code such as "IN").
// A number is valid when libphonenumber's metadata says so (Parse, then
// IsValidNumber); it is then known by its E.164 form. Values written the
// common ways are decided by package fast, with the same outcome; the others
// by the library itself. Normalize is safe for concurrent use.
func Normalize(input, region string) Result {
	s := strings.TrimSpace(input)
	if s == "" {
		return Result{Reason: ReasonMissing}
	}
	if len(s) > MaxNumberLen || !mayBeNumber(s) {
		return Result{Reason: ReasonInvalid}
	}
	region = strings.ToUpper(region)
	var buf [24]byte
	e164, res := fast.New(region).AppendE164(buf[:0], s)
	switch res {
	case fast.Invalid:
		return Result{Reason: ReasonInvalid}
	case fast.Unsure:
		var num phonenumbers.PhoneNumber
		if err := phonenumbers.ParseToNumber(s, region, &num); err != nil || !phonenumbers.IsValidNumber(&num) {
			return Result{Reason: ReasonInvalid, Library: true}
		}
		e164 = appendE164(buf[:0], &num)
	}
	key := digitsKey(e164[1:])
	if key == 0 {
		// E.164 allows 15 digits and the job store packs numbers into
		// integers of that size; libphonenumber's patterns may accept a
		// longer one in theory, which no provider would route.
		return Result{Reason: ReasonInvalid, Library: res == fast.Unsure}
	}
	return Result{E164: string(e164), Key: key, Library: res == fast.Unsure}
}

// Warm builds what Normalize needs for numbers of region (its first call
// builds it otherwise: ~5 ms for a region's tables), for a caller that has
// to wait for something else before its first numbers. It is safe to call
// at any time from any goroutine.
func Warm(region string) {
	fast.New(strings.ToUpper(region)).Warm()
}

// Parses reports whether libphonenumber reads s as a phone number of region,
// valid or not: how a first line of digits is told from a header.
func Parses(s, region string) bool {
	_, err := phonenumbers.Parse(s, strings.ToUpper(region))
	return err == nil
}

// SupportedRegion reports whether region is one libphonenumber knows (an
// upper-case ISO 3166 code).
func SupportedRegion(region string) bool {
	return phonenumbers.GetSupportedRegions()[region]
}

// DuplicateReason is the reject reason of a later row whose number was first
// seen on row first.
func DuplicateReason(first int64) string {
	return "duplicate of row " + strconv.FormatInt(first, 10)
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
