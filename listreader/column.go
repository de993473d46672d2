package listreader

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/capcheck/capcheck/phonenorm"
)

// looksLikeNumber reports whether a first line is a phone number rather than
// a header: no letters, and phonenumbers.Parse accepts it.
func looksLikeNumber(line []byte, region string) bool {
	s := strings.TrimSpace(string(line))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "" || len(s) > phonenorm.MaxNumberLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c >= 'a' && c <= 'z' {
			return false
		}
	}
	return phonenorm.Parses(s, region)
}

// looksLikeMistypedNumber reports whether a first line with no delimiter
// has the digits of a phone number (7 or more) and no word (3 letters in a
// row) though it is no valid number ("+91 98765 4321O"): a header names a
// column ("msisdn_20241201", "Mobile (as of 01/12/2024)"), and taking a data
// record for one would lose it silently. Read as plain text, the line is a
// record like the others and goes to rejects.csv if it is invalid.
func looksLikeMistypedNumber(line []byte) bool {
	digits, letters := 0, 0
	for _, c := range line {
		switch {
		case c >= '0' && c <= '9':
			digits++
			letters = 0
		case c|0x20 >= 'a' && c|0x20 <= 'z':
			if letters++; letters >= 3 {
				return false
			}
		case c == ',' || c == ';' || c == '\t' || c == '|':
			return false
		default:
			letters = 0
		}
	}
	return digits >= 7
}

func firstLineIsData(i int, h string) error {
	return fmt.Errorf("%w: the first line looks like data, not a header (field %d is the phone number %q): "+
		"add a header line naming the columns", ErrColumn, i+1, h)
}

// isValidNumber reports whether s is a valid phone number: what no header is.
func isValidNumber(s, region string) bool {
	return phonenorm.Normalize(s, region).Valid()
}

// phoneWords mark a header as the numbers' column. A header that is one of
// them (or one of them and "number"/"no") wins over one that merely contains
// one as a word ("phone_verified"), which wins over "number" alone.
var phoneWords = []string{"phone", "mobile", "msisdn", "cell", "cellphone", "telephone", "tel", "whatsapp"}

// ErrColumn is wrapped by the errors of New about the column to read
// (Config.Column).
var ErrColumn = errors.New("no such column")

// selectColumn returns the 0-based index of the column named by spec (a
// header name, case-insensitive, or a 1-based index), or of the first column
// that looks like a phone column when spec is empty.
func selectColumn(header []string, spec string) (int, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		if len(header) == 1 {
			return 0, nil
		}
		best, bestScore, tied := 0, 0, []string(nil)
		for i, h := range header {
			switch s := phoneScore(h); {
			case s > bestScore:
				best, bestScore, tied = i, s, []string{h}
			case s == bestScore && s > 0:
				tied = append(tied, h)
			}
		}
		switch {
		case bestScore == 0:
			return 0, fmt.Errorf("%w: no column's header looks like phone numbers (%s): name the column to read",
				ErrColumn, quoteList(header))
		case len(tied) > 1:
			return 0, fmt.Errorf("%w: several columns look like phone numbers (%s): name the column to read",
				ErrColumn, quoteList(tied))
		}
		return best, nil
	}
	for i, h := range header {
		if strings.EqualFold(h, spec) {
			return i, nil
		}
	}
	if n, err := strconv.Atoi(spec); err == nil {
		if n < 1 || n > len(header) {
			return 0, fmt.Errorf("column %d: %w: the header has %d column(s) (%s)", n, ErrColumn, len(header), quoteList(header))
		}
		return n - 1, nil
	}
	return 0, fmt.Errorf("column %q: %w: the header has %s", spec, ErrColumn, quoteList(header))
}

// phoneScore rates how surely a header names a phone column: 3 for "Phone",
// "mobile_no", "MSISDN"; 2 for a phone word among others ("phone_verified");
// 1 for "number" alone; 0 for none.
func phoneScore(header string) int {
	// Words split at anything but a letter and at camel case ("PhoneNo").
	var b strings.Builder
	prevLower := false
	for _, r := range header {
		isUpper, isLower := r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z'
		if isUpper && prevLower {
			b.WriteByte(' ')
		}
		prevLower = isLower
		b.WriteRune(r)
	}
	words := strings.FieldsFunc(strings.ToLower(b.String()), func(r rune) bool {
		return !(r >= 'a' && r <= 'z')
	})
	isPhone := func(w string) bool { return slices.Contains(phoneWords, w) }
	// A phone word next to one of these names something else about the
	// number ("Mobile Country Code", "cell_id", "phone_verified").
	other := func(w string) bool {
		return slices.Contains([]string{"id", "code", "country", "type", "operator", "circle", "verified", "status", "ok", "valid", "count"}, w)
	}
	flat := strings.Join(words, "")
	switch {
	case len(words) == 0:
		return 0
	case slices.ContainsFunc(words, other):
		return 0
	case isPhone(words[0]) && (len(words) == 1 || len(words) == 2 && slices.Contains([]string{"number", "no", "num", "nr"}, words[1])):
		return 3
	case isPhone(flat) || slices.ContainsFunc(phoneWords, func(p string) bool {
		return flat == p+"number" || flat == p+"no" || flat == p+"num"
	}):
		return 3 // "WhatsApp Number", "Tele Phone"
	case slices.ContainsFunc(words, isPhone) || slices.ContainsFunc(words, hasPhonePart):
		return 2
	case slices.ContainsFunc(words, func(w string) bool { return strings.Contains(w, "number") }):
		return 1
	}
	return 0
}

// hasPhonePart reports whether a word contains a long phone word: camel-case
// headers ("MobileNumber") come as one word.
func hasPhonePart(w string) bool {
	return strings.Contains(w, "phone") || strings.Contains(w, "mobile") || strings.Contains(w, "msisdn")
}

func quoteList(h []string) string {
	const maxShown = 20
	var b strings.Builder
	for i, s := range h {
		if i == maxShown {
			fmt.Fprintf(&b, ", ... (%d more)", len(h)-maxShown)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(s))
	}
	return b.String()
}
