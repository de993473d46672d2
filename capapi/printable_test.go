package capapi_test

import (
	"net/http"
	"strings"
	"testing"
	"unicode"
)

// A provider's code and message reach terminals, logs and files: an escape
// sequence or a line break in them must not rewrite what the operator sees.
func TestCheckStripsControlCharacters(t *testing.T) {
	t.Parallel()
	body := `{"code":"RBC\u001b[2J529","message":"Invalid\r\n\u001b[31mtime=... level=INFO msg=fake\u001b[0m\u0007\u009b1m\u202eok",` +
		`"error":{"error":"bad\tnumber\u0000"}}`
	c := setup(t, answer{status: http.StatusBadRequest, body: body}.serve)
	r := c.Check(t.Context(), []string{"919876543210"})
	for what, s := range map[string]string{"code": r.Code, "message": r.Message, "String()": r.String()} {
		if i := strings.IndexFunc(s, func(r rune) bool {
			return unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
		}); i >= 0 {
			t.Errorf("%s %q holds a control character at %d", what, s, i)
		}
	}
	if want := "Invalid  [31mtime=... level=INFO msg=fake[0m1mok: bad number"; r.Message != want {
		t.Errorf("message = %q, want %q", r.Message, want)
	}
	if r.Code != "RBC[2J529" {
		t.Errorf("code = %q", r.Code)
	}
}
