package callbacks

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// scanJSON reads the callbacks of a JSON body the common way, in place,
// without building the document: an object, or an array of objects, whose
// number and status are strings, numbers or booleans reached through
// objects. ok is false for anything else or anything wrong; fromJSON reads
// those and names what is wrong. Where both read a body they agree
// (FuzzScanJSON): keys match exactly, the last of equal keys wins, values
// are trimmed, numbers kept as written.
func scanJSON(body []byte, number, status []string) (out []field, ok bool) {
	if !json.Valid(body) {
		return nil, false
	}
	i := skipSpace(body, 0)
	switch body[i] {
	case '{':
		f, ok := scanObject(body, i, number, status)
		if !ok {
			return nil, false
		}
		return []field{f}, true
	case '[':
		i = skipSpace(body, i+1)
		for body[i] != ']' {
			if body[i] != '{' {
				return nil, false
			}
			f, ok := scanObject(body, i, number, status)
			if !ok {
				return nil, false
			}
			out = append(out, f)
			i = skipSpace(body, skipValue(body, i))
			if body[i] == ',' {
				i = skipSpace(body, i+1)
			}
		}
		return out, len(out) > 0
	}
	return nil, false
}

func scanObject(b []byte, i int, number, status []string) (field, bool) {
	num, ok := text(find(b, i, number))
	if !ok || num == "" {
		return field{}, false
	}
	st, ok := text(find(b, i, status))
	if !ok {
		return field{}, false
	}
	return field{number: num, status: st}, true
}

// find follows path from the object at b[i] and returns the value there
// (nil when there is none, or when the path goes through an array).
func find(b []byte, i int, path []string) []byte {
	var val []byte
	i = skipSpace(b, i+1)
	for b[i] != '}' {
		ke := skipString(b, i)
		key := b[i:ke]
		vs := skipSpace(b, skipSpace(b, ke)+1) // past ':'
		ve := skipValue(b, vs)
		if keyIs(key, path[0]) { // the last of equal keys wins
			switch {
			case len(path) == 1:
				val = b[vs:ve]
			case b[vs] == '{':
				val = find(b, vs, path[1:])
			default:
				val = nil
			}
		}
		i = skipSpace(b, ve)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return val
}

// keyIs compares a quoted key with a path segment.
func keyIs(quoted []byte, seg string) bool {
	s := quoted[1 : len(quoted)-1]
	if plain(s) {
		return string(s) == seg
	}
	var k string
	return json.Unmarshal(quoted, &k) == nil && k == seg
}

// text is a scalar value as fromJSON's scalar makes it: a string (trimmed),
// a number as written, true or false. ok is false for null, objects,
// arrays and a missing value.
func text(v []byte) (string, bool) {
	if len(v) == 0 {
		return "", false
	}
	switch v[0] {
	case '"':
		if s := v[1 : len(v)-1]; plain(s) {
			return strings.TrimSpace(string(s)), true
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", false
		}
		return strings.TrimSpace(s), true
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(v), true
	}
	return "", false
}

// plain reports whether a string's contents need no decoding: no escape,
// ASCII only (encoding/json replaces invalid UTF-8).
func plain(s []byte) bool {
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// The skips below read JSON that json.Valid accepted.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}
