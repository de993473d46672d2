package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://127.0.0.1:6379/0":              "redis://127.0.0.1:6379/0",
		"redis://:pw@h:6379/0":                  "redis://:xxxxx@h:6379/0",
		"redis://app:pw@h:6379/0":               "redis://app:xxxxx@h:6379/0",
		"https://TOKEN@api.example.com/v1":      "https://xxxxx@api.example.com/v1",
		"redis-socket://:pw@/run/r.sock?db=2":   "redis-socket://:xxxxx@/run/r.sock?db=xxxxx",
		"redis-sentinel://:pw@a:1,b:2?master=m": "redis-sentinel://:xxxxx@a:1,b:2?master=xxxxx",
		"https://u:p@api.x/y?k=v&k2=v2#frag":    "https://u:xxxxx@api.x/y?k=xxxxx&k2=xxxxx#xxxxx",
		"https://api.x/y?topsecret":             "https://api.x/y?xxxxx",
		"localhost:6379":                        "localhost:6379",
		"user:pw@host":                          "user:xxxxx@host",
		// Passwords with unencoded / ? # @, which url.Parse misreads.
		"redis://:s3cr/et@h:6379/0":           "redis://xxxxx@h:6379/0",
		"redis://:12345?topsecret@h:6379/0":   "redis://xxxxx@h:6379/0",
		"redis://:pa#ss@h:6379/0":             "redis://xxxxx@h:6379/0",
		"redis://:p@ss@h:6379/0":              "redis://xxxxx@h:6379/0",
		"https://u:a/b?c#d@api.example.com/x": "https://xxxxx@api.example.com/x",
	} {
		got := URL(in)
		if got != want {
			t.Errorf("URL(%q) = %q; want %q", in, got, want)
		}
		for _, secret := range []string{"pw", "s3cr", "et@", "12345", "topsecret", "pa#ss", "p@ss", "TOKEN", "frag", "v2"} {
			if strings.Contains(in, secret) && strings.Contains(got, secret) {
				t.Errorf("URL(%q) = %q shows %q", in, got, secret)
			}
		}
	}
}
