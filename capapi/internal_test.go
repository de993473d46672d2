package capapi

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"3", 3 * time.Second},
		{" 7 ", 7 * time.Second},
		{"1.5", 1500 * time.Millisecond},
		{"-2", 0},
		{"NaN", 0},
		{"soon", 0},
		{"99999999999999999999", time.Duration(math.MaxInt64)},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"Sat, 01 Mar 2025 12:00:05 GMT", 5 * time.Second},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    providerBody
		wantErr bool
	}{
		{`{"code":"MSG402","message":"Request Successfully Processed","data":[],"error":{}}`,
			providerBody{code: "MSG402", msg: "Request Successfully Processed"}, false},
		{`{"code":"RBC529","message":"Invalid input or validation error!","error":{"error":"bad"}}`,
			providerBody{code: "RBC529", msg: "Invalid input or validation error!", detail: "bad"}, false},
		{`{"code":529,"message":"m","error":{"number":"too long","to":["x","y"]}}`,
			providerBody{code: "529", msg: "m", detail: "number: too long; to: x; y"}, false},
		{`{"error":"plain"}`, providerBody{detail: "plain"}, false},
		{`{"error":null,"code":null}`, providerBody{}, false},
		{` {} `, providerBody{}, false},
		{``, providerBody{}, true},
		{`[]`, providerBody{}, true},
		{`null`, providerBody{}, true},
		{`{"code":`, providerBody{}, true},
		{`{"code":{}}`, providerBody{}, false},
	}
	for _, tt := range tests {
		got, err := parseBody([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseBody(%q) error = %v, want error %t", tt.in, err, tt.wantErr)
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(providerBody{})); diff != "" {
			t.Errorf("parseBody(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// FuzzParseBody checks that no answer body can make the parser panic.
func FuzzParseBody(f *testing.F) {
	for _, s := range []string{`{"code":"X","message":"m","error":{"error":"e"}}`, `{"error":[1,{"a":null}]}`, `[`, `{"a":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseBody(b)
		if err == nil {
			_ = p.message()
		}
		_ = parseRetryAfter(string(b), time.Now())
	})
}

func TestUnknownHostIsFatal(t *testing.T) {
	c, err := New(Config{BaseURL: "https://api.example.invalid", SID: "S", APIKey: "key-123456"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	notFound := &url.Error{Op: "Post", URL: "https://api.example.invalid", Err: &net.OpError{Op: "dial", Err: &net.DNSError{Name: "api.example.invalid", IsNotFound: true}}}
	if r := c.failure(ctx, ctx, notFound); r.Class != Fatal || !strings.Contains(r.Err.Error(), "no such host") {
		t.Errorf("unknown host: %v (%v), want Fatal naming the host", r.Class, r.Err)
	}
	// A resolver that did not answer may answer next time.
	flaky := &url.Error{Op: "Post", URL: "https://api.example.invalid", Err: &net.DNSError{Name: "api.example.invalid", IsTemporary: true}}
	if r := c.failure(ctx, ctx, flaky); r.Class != Transient {
		t.Errorf("temporary DNS failure: %v, want Transient", r.Class)
	}
}

// TestBodyAsJSONMarshal: the request body is the bytes json.Marshal writes
// for the numbers in their wire form, whatever a caller passes.
func TestBodyAsJSONMarshal(t *testing.T) {
	t.Parallel()
	type request struct {
		Number            []string `json:"number"`
		CallbackProfileID string   `json:"callback_profile_id,omitempty"`
	}
	lists := [][]string{
		{"+919812345678"},
		{"+919812345678", "919800000001", "+1 (555) 010-9999"},
		{`+91"98`, `a\b`, "<", ">", "&", "\x7f", "\x1f", "tab\there", "nl\n", "ünï", "\u2028", "\xff\xfe", "+", ""},
	}
	for _, e164 := range []bool{false, true} {
		for _, profile := range []string{"", "prof-1", `p"<&>\` + "\u2029"} {
			c := &Client{cfg: Config{WireE164: e164, CallbackProfileID: profile}}
			c.bodyEnd = bodyEnd(c.cfg)
			for _, numbers := range lists {
				wire := make([]string, len(numbers))
				for i, n := range numbers {
					wire[i] = strings.TrimPrefix(n, "+")
					if e164 {
						wire[i] = "+" + wire[i]
					}
				}
				want, err := json.Marshal(request{Number: wire, CallbackProfileID: profile})
				if err != nil {
					t.Fatal(err)
				}
				if got := c.body(numbers); string(got) != string(want) {
					t.Errorf("body(%q) e164=%t profile=%q = %s, want %s", numbers, e164, profile, got, want)
				}
			}
		}
	}
}

// TestParseBodyRemembered: the client's parse of a body is parseBody's,
// whatever came before it, the remembered body or another.
func TestParseBodyRemembered(t *testing.T) {
	t.Parallel()
	bodies := []string{
		`{"code":"MSG402","message":"Request Successfully Processed","data":[],"error":{}}`,
		`{"code":"MSG402","message":"Request Successfully Processed","data":[],"error":{}}`,
		`{"code":"RBC529","message":"Invalid input or validation error!","error":{"error":"bad"}}`,
		`{"code":"MSG402","message":"Request Successfully Processed","data":[],"error":{}}`,
		`not json`,
		`not json`,
		`{"error":"aaa"}`,
		`{"error":"bbb"}`,
		`{"code":"RBC529","message":"Invalid input or validation error!","error":{"error":"worse"}}`,
		`{"code":"x","message":"` + strings.Repeat("m", memoMax) + `"}`,
		`{"code":"x","message":"` + strings.Repeat("m", memoMax) + `"}`,
		``,
	}
	c := &Client{}
	for i, b := range bodies {
		wantPB, wantErr := parseBody([]byte(b))
		buf := []byte(b) // the caller's buffer, reused for the next body
		gotPB, gotErr := c.parseBody(buf)
		copy(buf, strings.Repeat("#", len(buf)))
		if gotPB != wantPB || (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Errorf("body %d: parse = %+v, %v; want %+v, %v", i, gotPB, gotErr, wantPB, wantErr)
		}
	}
}
