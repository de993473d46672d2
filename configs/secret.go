package configs

import (
	"fmt"
	"log/slog"
)

// redacted is what a [Secret] prints, logs and marshals as.
const redacted = "[redacted]"

// Secret holds a credential such as the API key. It prints, logs and marshals
// as "[redacted]" whatever the verb or encoder (fmt, slog text and JSON,
// encoding/json, encoding.TextMarshaler users such as yaml.v3); only
// [Secret.Reveal] returns the value, for the one place that sends it.
//
// The value sits in an unexported field of a struct, not in a string type,
// so reflection-based printers cannot reach it either.
type Secret struct {
	value string
}

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the secret value. Call it only where the value is sent.
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == "" }

// Equal reports whether s and o hold the same value. go-cmp uses it, so
// tests can compare configs without seeing the value.
func (s Secret) Equal(o Secret) bool { return s.value == o.value }

// String returns "[redacted]".
func (s Secret) String() string { return redacted }

// GoString returns "[redacted]", for %#v.
func (s Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb (%v, %+v, %#v, %s, %q, %x, %d, ...),
// so that no verb falls through to fmt's reflection on the struct.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", redacted)
		return
	}
	_, _ = f.Write([]byte(redacted))
}

// LogValue makes slog log "[redacted]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns "[redacted]".
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalJSON returns "[redacted]" as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
