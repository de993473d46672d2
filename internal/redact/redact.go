// Package redact hides what a URL may carry of a secret before the URL is
// shown in a message, a log line or a file: every place capcheck prints a
// URL goes through [URL].
package redact

import "strings"

// Mask replaces each hidden part.
const Mask = "xxxxx"

// URL returns s with its user info's password (the whole user info when its
// shape is unusual), its query values and its fragment replaced by Mask.
// It does not parse s: a password with an unencoded '/', '?', '#' or '@'
// (which url.Parse reads as a path, a query or a host) is hidden all the
// same, since everything before the last '@' counts as user info.
func URL(s string) string {
	prefix, rest := "", s
	if scheme, after, ok := strings.Cut(s, "://"); ok {
		prefix, rest = scheme+"://", after
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = userInfo(rest[:at]) + "@" + rest[at+1:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i] + query(rest[i:])
	}
	return prefix + rest
}

// userInfo keeps a plain user name ("app:" of "app:pw") and hides the rest.
func userInfo(u string) string {
	user, _, hasPassword := strings.Cut(u, ":")
	if !hasPassword || strings.ContainsAny(u, "/?#@") {
		return Mask
	}
	return user + ":" + Mask
}

// query hides the values of "?k=v&k2=v2#frag", keeping the keys.
func query(q string) string {
	var b strings.Builder
	for q != "" {
		sep := q[0] // '?', '&' or '#'
		q = q[1:]
		end := strings.IndexAny(q, "&#")
		if sep == '#' {
			end = -1 // a fragment runs to the end
		}
		part := q
		if end >= 0 {
			part, q = q[:end], q[end:]
		} else {
			q = ""
		}
		b.WriteByte(sep)
		if k, _, ok := strings.Cut(part, "="); ok && sep != '#' && !strings.ContainsAny(k, "/@:") {
			b.WriteString(k + "=" + Mask)
		} else if part != "" {
			b.WriteString(Mask)
		}
	}
	return b.String()
}
