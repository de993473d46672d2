package capapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/capapi"
)

const (
	testSID = "HXAP1234"
	testKey = "Ac0ffee5ecret0000key"
)

// setup starts a server answering with h and a client for it.
func setup(t *testing.T, h http.HandlerFunc, mod ...func(*capapi.Config)) *capapi.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := capapi.Config{BaseURL: srv.URL, SID: testSID, APIKey: testKey, Timeout: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := capapi.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	ok := capapi.Config{BaseURL: "https://api.kaleyra.io", SID: "S", APIKey: testKey}
	tests := []struct {
		name    string
		mod     func(*capapi.Config)
		wantErr string // "" means valid
	}{
		{"valid", func(*capapi.Config) {}, ""},
		{"trailing slash", func(c *capapi.Config) { c.BaseURL += "/" }, ""},
		{"path prefix", func(c *capapi.Config) { c.BaseURL += "/proxy/" }, ""},
		{"http", func(c *capapi.Config) { c.BaseURL = "http://127.0.0.1:8080" }, ""},
		{"empty base", func(c *capapi.Config) { c.BaseURL = "" }, "base URL is empty"},
		{"no scheme", func(c *capapi.Config) { c.BaseURL = "api.kaleyra.io" }, "must start with http"},
		{"ftp", func(c *capapi.Config) { c.BaseURL = "ftp://api.kaleyra.io" }, "must start with http"},
		{"no host", func(c *capapi.Config) { c.BaseURL = "https://" }, "no host"},
		{"unparseable", func(c *capapi.Config) { c.BaseURL = "https://a b\x7f/" }, "cannot be parsed"},
		{"credentials", func(c *capapi.Config) { c.BaseURL = "https://u:" + testKey + "@api.kaleyra.io" }, "credentials"},
		{"query", func(c *capapi.Config) { c.BaseURL += "?k=" + testKey }, "query"},
		{"empty SID", func(c *capapi.Config) { c.SID = " " }, "SID is empty"},
		{"SID with a slash", func(c *capapi.Config) { c.SID = "a/b" }, "one URL path segment"},
		{"password with a slash", func(c *capapi.Config) { c.BaseURL = "https://u:" + testKey + "/x@api.kaleyra.io" }, "credentials"},
		{"every problem", func(c *capapi.Config) { c.SID, c.APIKey = "", "" }, "SID is empty: set the account SID\ncapapi: API key is empty"},
		{"empty key", func(c *capapi.Config) { c.APIKey = "" }, "API key is empty"},
		{"key with newline", func(c *capapi.Config) { c.APIKey = testKey + "\n" }, "trailing newline"},
		{"negative timeout", func(c *capapi.Config) { c.Timeout = -time.Second }, "timeout"},
		{"negative conns", func(c *capapi.Config) { c.MaxConns = -1 }, "max connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			c, err := capapi.New(cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: unexpected error %v", err)
			case tt.wantErr == "" && c == nil:
				t.Fatal("New returned nil client")
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q shows the API key", err)
			}
		})
	}
}

func TestConfigHidesKey(t *testing.T) {
	t.Parallel()
	cfg := capapi.Config{BaseURL: "https://api.kaleyra.io", SID: "S", APIKey: testKey}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg)
	c, err := capapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
		fmt.Sprint(c), fmt.Sprintf("%+v", c), logged.String(),
	} {
		if strings.Contains(s, testKey) {
			t.Errorf("API key shown in %q", s)
		}
	}
	if !strings.Contains(logged.String(), "[REDACTED]") {
		t.Errorf("log line %q does not mark the key as redacted", logged.String())
	}
}

type captured struct {
	Method, Path, Key, ContentType string
	Body                           map[string]any
}

func TestCheckRequestShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mod     func(*capapi.Config)
		numbers []string
		want    map[string]any
	}{
		{
			name:    "digits, no callback profile",
			numbers: []string{"+919812345678", "+14155550123"},
			want:    map[string]any{"number": []any{"919812345678", "14155550123"}},
		},
		{
			name:    "one number is still an array",
			numbers: []string{"+919812345678"},
			want:    map[string]any{"number": []any{"919812345678"}},
		},
		{
			name:    "E.164 on the wire",
			mod:     func(c *capapi.Config) { c.WireE164 = true },
			numbers: []string{"+919812345678", "14155550123"},
			want:    map[string]any{"number": []any{"+919812345678", "+14155550123"}},
		},
		{
			name:    "callback profile",
			mod:     func(c *capapi.Config) { c.CallbackProfileID = "CB-77" },
			numbers: []string{"+919812345678"},
			want:    map[string]any{"number": []any{"919812345678"}, "callback_profile_id": "CB-77"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan captured, 1)
			h := func(w http.ResponseWriter, r *http.Request) {
				cp := captured{Method: r.Method, Path: r.URL.Path, Key: r.Header.Get("api-key"), ContentType: r.Header.Get("Content-Type")}
				if err := json.NewDecoder(r.Body).Decode(&cp.Body); err != nil {
					t.Errorf("server: decoding body: %v", err)
				}
				got <- cp
				w.WriteHeader(http.StatusAccepted)
				io.WriteString(w, `{"code":"MSG402","message":"Request Successfully Processed","data":[],"error":{}}`)
			}
			mods := []func(*capapi.Config){func(c *capapi.Config) { c.BaseURL += "/" }} // a trailing slash is tolerated
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			c := setup(t, h, mods...)
			res := c.Check(context.Background(), tt.numbers)
			if res.Class != capapi.Accepted {
				t.Fatalf("Check = %v, want accepted", res)
			}
			want := captured{
				Method: http.MethodPost, Path: "/v1/" + testSID + "/messages/soip/capability-check",
				Key: testKey, ContentType: "application/json", Body: tt.want,
			}
			if diff := cmp.Diff(want, <-got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

// answer writes a canned HTTP answer.
type answer struct {
	status int
	header map[string]string
	body   string
}

func (a answer) serve(w http.ResponseWriter, _ *http.Request) {
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

const (
	okBody      = `{"code":"MSG402","message":"Request Successfully Processed","data":[],"error":{}}`
	invalidBody = `{"code":"RBC529","message":"Invalid input or validation error!","data":[],"error":{"error":"invalid number: 91123"}}`
	authBody    = `{"code":"RBC401","message":"Unauthorized","data":[],"error":{"error":"invalid api key"}}`
)

func TestCheckClassifies(t *testing.T) {
	t.Parallel()
	type want struct {
		Class      capapi.Class
		StatusCode int
		Code       string
		Message    string
		RetryAfter time.Duration
		Err        string // substring of Err; "" means Err is nil
		BodyErr    string // substring of BodyErr; "" means BodyErr is nil
	}
	tests := []struct {
		name string
		ans  answer
		want want
	}{
		// A 202 is accepted whatever its body: sent again, the numbers
		// would be checked (and called back) again.
		{"202", answer{202, nil, okBody},
			want{capapi.Accepted, 202, "MSG402", "Request Successfully Processed", 0, "", ""}},
		{"202 other code", answer{202, nil, `{"code":"X1","message":"ok"}`},
			want{capapi.Accepted, 202, "X1", "ok", 0, "", ""}},
		{"202 empty object", answer{202, nil, `{}`},
			want{capapi.Accepted, 202, "", "Accepted", 0, "", ""}},
		{"202 not JSON", answer{202, nil, "<html>ok</html>"},
			want{capapi.Accepted, 202, "", "Accepted", 0, "", "malformed body"}},
		{"202 empty", answer{202, nil, ""},
			want{capapi.Accepted, 202, "", "Accepted", 0, "", "empty body"}},
		{"202 garbage", answer{202, nil, "\x00\xff\xfe garbage"},
			want{capapi.Accepted, 202, "", "Accepted", 0, "", "not a JSON object"}},
		{"202 truncated JSON", answer{202, nil, `{"code":"MSG4`},
			want{capapi.Accepted, 202, "", "Accepted", 0, "", "invalid JSON"}},
		{"202 over 1 MiB", answer{202, nil, `{"code":"MSG402","message":"` + strings.Repeat("x", 1<<20) + `"}`},
			want{capapi.Accepted, 202, "", "Accepted", 0, "", "larger than"}},
		// Invalid input: the batch is bisected.
		{"400 provider", answer{400, nil, invalidBody},
			want{capapi.Invalid, 400, "RBC529", "Invalid input or validation error!: invalid number: 91123", 0, "", ""}},
		{"422 provider", answer{422, nil, `{"code":"E422","message":"bad","error":{"number":"too long"}}`},
			want{capapi.Invalid, 422, "E422", "bad: number: too long", 0, "", ""}},
		{"413 provider", answer{413, nil, `{"code":"E413","message":"too many numbers"}`},
			want{capapi.Invalid, 413, "E413", "too many numbers", 0, "", ""}},
		{"400 not JSON", answer{400, nil, "<html>Bad Request</html>"},
			want{capapi.Transient, 400, "", "Bad Request", 0, "malformed body", ""}},
		{"400 empty object", answer{400, nil, "{}"},
			want{capapi.Transient, 400, "", "Bad Request", 0, "no code or message", ""}},
		// About the account: the job stops.
		{"401", answer{401, nil, authBody},
			want{capapi.Unauthorized, 401, "RBC401", "Unauthorized: invalid api key", 0, "", ""}},
		{"403 no body", answer{403, nil, ""},
			want{capapi.Unauthorized, 403, "", "Forbidden", 0, "", ""}},
		{"402 provider", answer{402, nil, `{"code":"BAL","message":"Insufficient balance"}`},
			want{capapi.Fatal, 402, "BAL", "Insufficient balance", 0, "HTTP 402 Payment Required from POST", ""}},
		{"402 no body", answer{402, nil, ""},
			want{capapi.Fatal, 402, "", "Payment Required", 0, "the account cannot use the API", ""}},
		// About the request as a whole, not its numbers: retried.
		{"409 provider", answer{409, nil, `{"code":"E409","message":"conflict","error":"dup"}`},
			want{capapi.Transient, 409, "E409", "conflict: dup", 0, "unexpected HTTP 409 Conflict: E409 conflict: dup", ""}},
		{"423 provider", answer{423, nil, `{"code":"LCK","message":"Account locked"}`},
			want{capapi.Transient, 423, "LCK", "Account locked", 0, "unexpected HTTP 423", ""}},
		{"451 provider", answer{451, nil, `{"message":"not in this region"}`},
			want{capapi.Transient, 451, "", "not in this region", 0, "unexpected HTTP 451", ""}},
		{"429 seconds", answer{429, map[string]string{"Retry-After": "3"}, `{"code":"RBC429","message":"Too Many Requests"}`},
			want{capapi.RateLimited, 429, "RBC429", "Too Many Requests", 3 * time.Second, "", ""}},
		{"429 no header", answer{429, nil, ""},
			want{capapi.RateLimited, 429, "", "Too Many Requests", 0, "", ""}},
		{"429 bad header", answer{429, map[string]string{"Retry-After": "soon"}, ""},
			want{capapi.RateLimited, 429, "", "Too Many Requests", 0, "", ""}},
		{"503 provider", answer{503, nil, `{"code":"RBC503","message":"Service Unavailable"}`},
			want{capapi.Transient, 503, "RBC503", "Service Unavailable", 0, "HTTP 503", ""}},
		{"500 HTML", answer{500, nil, "<html>oops</html>"},
			want{capapi.Transient, 500, "", "Internal Server Error", 0, "HTTP 500", ""}},
		{"503 over 1 MiB", answer{503, nil, strings.Repeat("x", 1<<20+1)},
			want{capapi.Transient, 503, "", "Service Unavailable", 0, "larger than", ""}},
		{"408", answer{408, nil, ""},
			want{capapi.Transient, 408, "", "Request Timeout", 0, "HTTP 408", ""}},
		// Not the provider's API: the configuration is wrong.
		{"404", answer{404, nil, "404 page not found"},
			want{capapi.Fatal, 404, "", "Not Found", 0, "check the API base URL and SID", ""}},
		{"404 provider body", answer{404, nil, `{"code":"RBC404","message":"Not Found"}`},
			want{capapi.Fatal, 404, "RBC404", "Not Found", 0, "check the API base URL and SID", ""}},
		{"405", answer{405, nil, ""},
			want{capapi.Fatal, 405, "", "Method Not Allowed", 0, "check the API base URL", ""}},
		{"415 no provider body", answer{415, nil, "nope"},
			want{capapi.Fatal, 415, "", "Unsupported Media Type", 0, "unexpected HTTP 415", ""}},
		{"200", answer{200, nil, "<html>welcome</html>"},
			want{capapi.Fatal, 200, "", "OK", 0, "the API answers 202", ""}},
		{"redirect", answer{301, map[string]string{"Location": "https://api.eu.kaleyra.io/v1/x?token=secret"}, ""},
			want{capapi.Fatal, 301, "", "Moved Permanently", 0, "redirects to https://api.eu.kaleyra.io/v1/x:", ""}},
	}
	// The client's own connections, and a caller's http.Client.
	transports := map[string]func(*capapi.Config){
		"direct": func(*capapi.Config) {},
		"http.Client": func(c *capapi.Config) {
			c.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		},
	}
	for tname, mod := range transports {
		for _, tt := range tests {
			t.Run(tname+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				var calls atomic.Int32
				c := setup(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1); tt.ans.serve(w, r) }, mod)
				res := c.Check(context.Background(), []string{"+919812345678"})
				got := want{res.Class, res.StatusCode, res.Code, res.Message, res.RetryAfter, "", ""}
				for _, e := range []struct {
					name string
					err  error
					want string
					got  *string
				}{{"Err", res.Err, tt.want.Err, &got.Err}, {"BodyErr", res.BodyErr, tt.want.BodyErr, &got.BodyErr}} {
					if e.err == nil {
						continue
					}
					*e.got = e.want // compared here
					if e.want == "" || !strings.Contains(e.err.Error(), e.want) {
						t.Errorf("%s = %q, want one containing %q", e.name, e.err, e.want)
					}
					if strings.Contains(e.err.Error(), "secret") {
						t.Errorf("%s = %q shows a URL query", e.name, e.err)
					}
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("result (-want +got):\n%s\nfull: %v", diff, res)
				}
				if res.Latency <= 0 {
					t.Errorf("Latency = %v, want > 0", res.Latency)
				}
				if n := calls.Load(); n != 1 {
					t.Errorf("%d requests, want 1", n)
				}
			})
		}
	}
}

func TestCheckRetryAfterDate(t *testing.T) {
	t.Parallel()
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		// HTTP dates have whole seconds: ask for 5 s so the answer is 4..5 s.
		w.Header().Set("Retry-After", time.Now().Add(5*time.Second).UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusTooManyRequests)
	})
	res := c.Check(context.Background(), []string{"+919812345678"})
	if res.Class != capapi.RateLimited || res.RetryAfter < 3*time.Second || res.RetryAfter > 5*time.Second {
		t.Errorf("Check = %v, want rate_limited with RetryAfter in [3s,5s]", res)
	}
}

func TestCheckTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}, func(c *capapi.Config) { c.Timeout = 50 * time.Millisecond })
	defer close(release)
	res := c.Check(context.Background(), []string{"+919812345678"})
	if res.Class != capapi.Transient || res.StatusCode != 0 {
		t.Fatalf("Check = %v, want transient without status", res)
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) || !strings.Contains(res.Err.Error(), "timed out after 50ms") {
		t.Errorf("Err = %v, want a timeout wrapping context.DeadlineExceeded", res.Err)
	}
}

// A body cut short by the timeout: a 202's numbers were taken all the same,
// another answer's are sent again.
func TestCheckTimeoutWhileReadingBody(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusAccepted, http.StatusBadRequest} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			c := setup(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
				io.WriteString(w, `{"code":`)
				http.NewResponseController(w).Flush()
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}, func(c *capapi.Config) { c.Timeout = 50 * time.Millisecond })
			defer close(release)
			res := c.Check(context.Background(), []string{"+919812345678"})
			switch {
			case status == http.StatusAccepted && (res.Class != capapi.Accepted || res.Err != nil || !errors.Is(res.BodyErr, context.DeadlineExceeded)):
				t.Errorf("Check = %v, want accepted, its body's timeout in BodyErr", res)
			case status != http.StatusAccepted && (res.Class != capapi.Transient || !errors.Is(res.Err, context.DeadlineExceeded)):
				t.Errorf("Check = %v, want transient timeout", res)
			}
		})
	}
}

func TestCheckCanceledByCaller(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	release := make(chan struct{})
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	res := c.Check(ctx, []string{"+919812345678"})
	if res.Class != capapi.Transient || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("Check = %v, want transient wrapping context.Canceled", res)
	}
}

func TestCheckConnectionReset(t *testing.T) {
	t.Parallel()
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // close with RST, as a crashed peer would
		}
		conn.Close()
	})
	res := c.Check(context.Background(), []string{"+919812345678"})
	if res.Class != capapi.Transient || res.StatusCode != 0 || res.Err == nil {
		t.Errorf("Check = %v, want transient without status", res)
	}
}

func TestCheckConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens on its address any more
	c, err := capapi.New(capapi.Config{BaseURL: srv.URL, SID: testSID, APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	res := c.Check(context.Background(), []string{"+919812345678"})
	if res.Class != capapi.Transient || res.Err == nil || !strings.Contains(res.Err.Error(), "/messages/soip/capability-check") {
		t.Errorf("Check = %v, want transient naming the endpoint", res)
	}
}

func TestCheckNeverShowsKey(t *testing.T) {
	t.Parallel()
	// A hostile or buggy server echoes the key in every place it can.
	echo := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			k := r.Header.Get("api-key")
			w.Header().Set("Location", "https://x/"+k+"?q="+k)
			w.WriteHeader(status)
			io.WriteString(w, strings.ReplaceAll(body, "KEY", k))
		}
	}
	handlers := map[string]http.HandlerFunc{
		"202 malformed": echo(202, "<html>KEY</html>"),
		"402":           echo(402, `{"code":"BAL","message":"Insufficient balance for KEY"}`),
		"409":           echo(409, `{"code":"E409","message":"conflict KEY"}`),
		"400 provider":  echo(400, `{"code":"KEY","message":"bad KEY","error":{"error":"key KEY"}}`),
		"400 malformed": echo(400, "KEY"),
		"401":           echo(401, `{"code":"RBC401","message":"Unauthorized","error":{"error":"invalid api key KEY"}}`),
		"503":           echo(503, `{"message":"down KEY"}`),
		"302":           echo(302, ""),
		"reset": func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		},
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res := setup(t, h).Check(context.Background(), []string{"+919812345678"})
			for _, s := range []string{res.String(), res.Code, res.Message, fmt.Sprint(res.Err), fmt.Sprint(res.BodyErr)} {
				if strings.Contains(s, testKey) {
					t.Errorf("API key shown in %q", s)
				}
			}
		})
	}
}

// TestConnectionsReused checks that bodies are drained and closed: many
// sequential calls of every kind share one connection.
func TestConnectionsReused(t *testing.T) {
	t.Parallel()
	var conns, calls atomic.Int64
	answers := []answer{
		{202, nil, okBody}, {400, nil, invalidBody}, {401, nil, authBody},
		{429, map[string]string{"Retry-After": "1"}, ""}, {503, nil, strings.Repeat("x", 10<<10)},
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answers[int(calls.Add(1)-1)%len(answers)].serve(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := capapi.New(capapi.Config{BaseURL: srv.URL, SID: testSID, APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 * len(answers) {
		c.Check(context.Background(), []string{"+919812345678"})
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections opened for %d sequential calls, want 1", n, calls.Load())
	}
}

func TestCheckMisuse(t *testing.T) {
	t.Parallel()
	var nilClient *capapi.Client
	if res := nilClient.Check(context.Background(), []string{"+1"}); res.Class != capapi.Fatal {
		t.Errorf("nil client: Check = %v, want fatal", res)
	}
	c := setup(t, answer{202, nil, okBody}.serve)
	if res := c.Check(context.Background(), nil); res.Class != capapi.Fatal || res.Err == nil {
		t.Errorf("no numbers: Check = %v, want fatal", res)
	}
	var nilCtx context.Context // a caller bug that must not panic
	if res := c.Check(nilCtx, []string{"+919812345678"}); res.Class != capapi.Accepted {
		t.Errorf("nil context: Check = %v, want accepted", res)
	}
}

func TestClassString(t *testing.T) {
	t.Parallel()
	got := []string{}
	for c := capapi.Class(0); c <= capapi.Fatal+1; c++ {
		got = append(got, c.String())
	}
	want := []string{"Class(0)", "accepted", "invalid", "unauthorized", "rate_limited", "transient", "fatal", "Class(7)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Class names (-want +got):\n%s", diff)
	}
}
