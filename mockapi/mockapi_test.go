package mockapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	testSID = "HXAP1234"
	testKey = "mock-secret-key-0123"
)

// fakeClock is a settable clock for the rate limit.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type bundle struct {
	s     *Server
	srv   *httptest.Server
	clock *fakeClock
}

// setup starts a Server for cfg (SID and key filled in when empty) on a
// fake clock.
func setup(t *testing.T, cfg Config) *bundle {
	t.Helper()
	cfg.SID = cmpOr(cfg.SID, testSID)
	cfg.APIKey = cmpOr(cfg.APIKey, testKey)
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clock := &fakeClock{t: fakeEpoch}
	s.now = clock.Now
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &bundle{s: s, srv: srv, clock: clock}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

type resp struct {
	status int
	header http.Header
	body   apiBody
	raw    string
}

// do sends method path with body and the usual headers, changed by mod.
func (b *bundle) do(t *testing.T, method, path, body string, mod func(*http.Request)) resp {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("api-key", testKey)
	req.Header.Set("Content-Type", "application/json")
	if mod != nil {
		mod(req)
	}
	res, err := b.srv.Client().Do(req)
	if err != nil {
		return resp{} // a dropped connection
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Errorf("%s %s: answer is not JSON: %q", method, path, raw)
	}
	return r
}

func (b *bundle) post(t *testing.T, body string) resp {
	t.Helper()
	return b.do(t, http.MethodPost, "/v1/"+testSID+"/messages/soip/capability-check", body, nil)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"valid", func(*Config) {}, ""},
		{"fractional rate", func(c *Config) { c.Rate = 2.5 }, ""},
		{"empty SID", func(c *Config) { c.SID = "" }, "SID is empty"},
		{"SID with slash", func(c *Config) { c.SID = "a/b" }, "single path segment"},
		{"empty key", func(c *Config) { c.APIKey = "" }, "API key is empty"},
		{"negative batch", func(c *Config) { c.MaxBatch = -1 }, "max batch"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate must be"},
		{"rate below 1", func(c *Config) { c.Rate = 0.5 }, "rate must be"},
		{"negative latency", func(c *Config) { c.Latency = -time.Millisecond }, "latency"},
		{"fail rate above 1", func(c *Config) { c.FailRate = 1.5 }, "fail rate"},
		{"reset rate negative", func(c *Config) { c.ResetRate = -0.1 }, "reset rate"},
		{"rates sum above 1", func(c *Config) { c.FailRate, c.ResetRate = 0.6, 0.6 }, "plus reset rate"},
		{"suffix not digits", func(c *Config) { c.RejectSuffix = "9x" }, "digits only"},
		{"callback URL without scheme", func(c *Config) { c.CallbackURL = "127.0.0.1:8081/callback" }, "callback URL must be"},
		{"callback refuse rate above 1", func(c *Config) { c.CallbackRefuseRate = 2 }, "callback refuse rate must be between 0 and 1 (got 2)"},
		{"capable fraction NaN", func(c *Config) { c.CapableFraction = math.NaN() }, "capable fraction must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{SID: testSID, APIKey: testKey}
			tt.mod(&cfg)
			_, err := New(cfg)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("New error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	const apiPath = "/v1/" + testSID + "/messages/soip/capability-check"
	setKey := func(k string) func(*http.Request) { return func(r *http.Request) { r.Header.Set("api-key", k) } }
	setType := func(ct string) func(*http.Request) { return func(r *http.Request) { r.Header.Set("Content-Type", ct) } }
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		mod        func(*http.Request)
		wantStatus int
		wantCode   string
		wantDetail string
	}{
		{"array", "POST", apiPath, `{"number":["919812345678","14155550123"]}`, nil, 202, "MSG402", ""},
		{"one string", "POST", apiPath, `{"number":"919812345678"}`, nil, 202, "MSG402", ""},
		{"comma-separated", "POST", apiPath, `{"number":"919812345678, 14155550123,447911123456"}`, nil, 202, "MSG402", ""},
		{"E.164 with plus", "POST", apiPath, `{"number":["+919812345678"],"callback_profile_id":"CB1"}`, nil, 202, "MSG402", ""},
		{"charset parameter", "POST", apiPath, `{"number":["919812345678"]}`, setType("application/json; charset=utf-8"), 202, "MSG402", ""},
		{"8 digits", "POST", apiPath, `{"number":["12345678"]}`, nil, 202, "MSG402", ""},
		{"15 digits", "POST", apiPath, `{"number":["123456789012345"]}`, nil, 202, "MSG402", ""},

		{"wrong SID", "POST", "/v1/OTHER/messages/soip/capability-check", `{"number":"919812345678"}`, nil, 404, "RBC404", "no such endpoint"},
		{"trailing slash", "POST", apiPath + "/", `{"number":"919812345678"}`, nil, 404, "RBC404", "no such endpoint"},
		{"root", "GET", "/", "", nil, 404, "RBC404", "no such endpoint"},
		{"GET", "GET", apiPath, "", nil, 405, "RBC405", "use POST"},
		{"missing key", "POST", apiPath, `{"number":"919812345678"}`, setKey(""), 401, "RBC401", "invalid api key"},
		{"wrong key", "POST", apiPath, `{"number":"919812345678"}`, setKey("nope"), 401, "RBC401", "invalid api key"},
		{"wrong method before auth", "PUT", apiPath, "", setKey("nope"), 405, "RBC405", "use POST"},

		{"no content type", "POST", apiPath, `{"number":"919812345678"}`, setType(""), 400, "RBC529", "content type"},
		{"text content type", "POST", apiPath, `{"number":"919812345678"}`, setType("text/plain"), 400, "RBC529", "content type"},
		{"not JSON", "POST", apiPath, `{"number":`, nil, 400, "RBC529", "not valid JSON"},
		{"not an object", "POST", apiPath, `["919812345678"]`, nil, 400, "RBC529", "JSON object"},
		{"empty body", "POST", apiPath, ``, nil, 400, "RBC529", "JSON object"},
		{"missing number", "POST", apiPath, `{}`, nil, 400, "RBC529", "number is required"},
		{"null number", "POST", apiPath, `{"number":null}`, nil, 400, "RBC529", "number is required"},
		{"empty string", "POST", apiPath, `{"number":" "}`, nil, 400, "RBC529", "number is empty"},
		{"empty array", "POST", apiPath, `{"number":[]}`, nil, 400, "RBC529", "number is empty"},
		{"number as JSON number", "POST", apiPath, `{"number":919812345678}`, nil, 400, "RBC529", "string or an array"},
		{"array of numbers", "POST", apiPath, `{"number":[919812345678]}`, nil, 400, "RBC529", "string or an array"},
		{"callback not string", "POST", apiPath, `{"number":"919812345678","callback_profile_id":7}`, nil, 400, "RBC529", "callback_profile_id"},
		{"too short", "POST", apiPath, `{"number":["1234567"]}`, nil, 400, "RBC529", "invalid number: 1234567"},
		{"too long", "POST", apiPath, `{"number":["1234567890123456"]}`, nil, 400, "RBC529", "invalid number: 1234567890123456"},
		{"leading zero", "POST", apiPath, `{"number":["09812345678"]}`, nil, 400, "RBC529", "invalid number: 09812345678"},
		{"letters", "POST", apiPath, `{"number":["9198XXXXXXXX"]}`, nil, 400, "RBC529", "invalid number: 9198XXXXXXXX"},
		{"spaces inside array element", "POST", apiPath, `{"number":[" 919812345678"]}`, nil, 400, "RBC529", "invalid number"},
		{"empty element in list", "POST", apiPath, `{"number":"919812345678,,14155550123"}`, nil, 400, "RBC529", "invalid number: "},
		{"one bad number fails all", "POST", apiPath, `{"number":["919812345678","12"]}`, nil, 400, "RBC529", "invalid number: 12"},
	}
	b := setup(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do(t, tt.method, tt.path, tt.body, tt.mod)
			if r.status != tt.wantStatus || r.body.Code != tt.wantCode || !strings.Contains(r.body.Error.Error, tt.wantDetail) {
				t.Errorf("got %d %s, want %d %s with error containing %q", r.status, r.raw, tt.wantStatus, tt.wantCode, tt.wantDetail)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if r.status == 405 && r.header.Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
		})
	}
	st := b.s.Stats()
	if st.Requests != int64(len(tests)) {
		t.Errorf("Requests = %d, want %d", st.Requests, len(tests))
	}
}

func TestExactBodies(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	tests := []struct {
		name string
		key  string
		want string
	}{
		{"202", testKey, `{"code":"MSG402","message":"Request Successfully Processed","data":[],"error":{}}`},
		{"401", "bad", `{"code":"RBC401","message":"Unauthorized","data":[],"error":{"error":"invalid api key"}}`},
	}
	for _, tt := range tests {
		r := b.do(t, "POST", b.s.Path(), `{"number":["919812345678"]}`, func(r *http.Request) { r.Header.Set("api-key", tt.key) })
		if got := strings.TrimSpace(r.raw); got != tt.want {
			t.Errorf("%s body = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestMaxBatchAndRejectSuffix(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MaxBatch: 3, RejectSuffix: "999"})
	tests := []struct {
		body       string
		wantStatus int
		wantDetail string
	}{
		{`{"number":["919800000001","919800000002","919800000003"]}`, 202, ""},
		{`{"number":"919800000001,919800000002,919800000003,919800000004"}`, 400, "too many numbers: 4, at most 3 per request"},
		{`{"number":["919800000001","919800000999"]}`, 400, "invalid number: 919800000999"},
		{`{"number":"+919800000999"}`, 400, "invalid number: +919800000999"},
		{`{"number":["919800000998"]}`, 202, ""},
	}
	for _, tt := range tests {
		r := b.post(t, tt.body)
		if r.status != tt.wantStatus || r.body.Error.Error != tt.wantDetail {
			t.Errorf("%s: got %d %s, want %d %q", tt.body, r.status, r.raw, tt.wantStatus, tt.wantDetail)
		}
	}
	if got := b.s.Stats().Accepted; got != 4 {
		t.Errorf("Accepted = %d, want 4 (refused batches accept nothing)", got)
	}
}

// fakeEpoch is where the tests' fake clocks start.
var fakeEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestStatsCount(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{TrackNumbers: true})
	b.post(t, `{"number":["919800000001","919800000002"]}`)
	b.post(t, `{"number":"+919800000001, 919800000003"}`) // the same number with '+'
	b.post(t, `{"number":["919800000001","bad"]}`)        // refused: counts nothing
	b.do(t, "POST", b.s.Path(), `{"number":"919800000004"}`, func(r *http.Request) { r.Header.Del("api-key") })
	want := Stats{
		Requests:  4,
		ByStatus:  map[int]int64{202: 2, 400: 1, 401: 1},
		Accepted:  4,
		Distinct:  3,
		Repeated:  1,
		MaxWindow: 4, // the fake clock stands still
		Numbers:   map[string]int{"919800000001": 2, "919800000002": 1, "919800000003": 1},
		// Every request arrived and was answered at the fake clock's time.
		PerSecond:      map[int64]int64{fakeEpoch.Unix(): 4},
		FirstArrivalUS: fakeEpoch.UnixMicro(),
		LastArrivalUS:  fakeEpoch.UnixMicro(),
		LastAnswerUS:   fakeEpoch.UnixMicro(),
	}
	if diff := cmp.Diff(want, b.s.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestStatsEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.post(t, `{"number":["919800000001","919800000001"]}`)
	get := func(method, path string) (int, Stats) {
		t.Helper()
		req, _ := http.NewRequest(method, b.srv.URL+path, nil)
		res, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var st Stats
		if res.StatusCode == http.StatusOK {
			if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
		}
		return res.StatusCode, st
	}
	want := Stats{Requests: 1, ByStatus: map[int]int64{202: 1}, Accepted: 2, Distinct: 1, Repeated: 1, MaxWindow: 1,
		PerSecond: map[int64]int64{fakeEpoch.Unix(): 1}, FirstArrivalUS: fakeEpoch.UnixMicro(),
		LastArrivalUS: fakeEpoch.UnixMicro(), LastAnswerUS: fakeEpoch.UnixMicro()}
	for _, step := range []struct {
		method, path string
		status       int
		want         Stats
	}{
		{"GET", "/stats", 200, want},
		{"POST", "/stats/reset", 200, want}, // the counters before the reset
		{"GET", "/stats", 200, Stats{ByStatus: map[int]int64{}}},
		{"POST", "/stats", 405, Stats{}},
		{"GET", "/stats/reset", 405, Stats{}},
	} {
		status, got := get(step.method, step.path)
		if status != step.status {
			t.Errorf("%s %s = %d, want %d", step.method, step.path, status, step.status)
		}
		if diff := cmp.Diff(step.want, got); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", step.method, step.path, diff)
		}
	}
	// The endpoint's JSON uses status codes as keys, "0" for drops.
	var raw map[string]any
	json.Unmarshal([]byte(mustJSON(t, Stats{ByStatus: map[int]int64{0: 1, 202: 2}})), &raw)
	if diff := cmp.Diff(map[string]any{"0": 1.0, "202": 2.0}, raw["by_status"]); diff != "" {
		t.Errorf("by_status JSON (-want +got):\n%s", diff)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Rate: 3})
	ok := `{"number":["919800000001"]}`
	statuses := func(n int, step time.Duration) []int {
		var got []int
		for range n {
			got = append(got, b.post(t, ok).status)
			b.clock.Advance(step)
		}
		return got
	}
	// Four requests within 300 ms: the fourth is over 3/s.
	if diff := cmp.Diff([]int{202, 202, 202, 429}, statuses(4, 100*time.Millisecond)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	// At t=400ms the window still holds 0,100,200: 429, room at t=1000ms.
	r := b.post(t, ok)
	if r.status != 429 || r.header.Get("Retry-After") != "1" || r.body.Code != "RBC429" {
		t.Errorf("got %d Retry-After %q %s, want 429 with Retry-After 1", r.status, r.header.Get("Retry-After"), r.raw)
	}
	// Unauthorized requests are refused before the rate limit: no 429.
	if r := b.do(t, "POST", b.s.Path(), ok, func(r *http.Request) { r.Header.Set("api-key", "x") }); r.status != 401 {
		t.Errorf("bad key while limited = %d, want 401", r.status)
	}
	b.clock.Advance(600 * time.Millisecond) // t=1000ms: the arrival at 0 leaves the window
	if diff := cmp.Diff([]int{202, 429}, statuses(2, 0)); diff != "" {
		t.Errorf("after the window moved (-want +got):\n%s", diff)
	}
	st := b.s.Stats()
	if st.RateLimited != 3 || st.Accepted != 4 || st.ByStatus[429] != 3 {
		t.Errorf("RateLimited %d Accepted %d ByStatus %v, want 3, 4, 3 429s", st.RateLimited, st.Accepted, st.ByStatus)
	}
	// Arrivals at 0, 100, 200, 300, 400, 400 (the 401), 1000, 1000 ms: the densest
	// second, (0, 1000], holds 100, 200, 300, 400, 400, 1000, 1000.
	if st.MaxWindow != 7 {
		t.Errorf("MaxWindow = %d, want 7", st.MaxWindow)
	}
}

func TestRateLimitRetryAfterWhenFractional(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Rate: 2.9}) // two per second
	ok := `{"number":["919800000001"]}`
	var got []int
	for range 3 {
		got = append(got, b.post(t, ok).status)
	}
	if diff := cmp.Diff([]int{202, 202, 429}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

// TestMaxWindowUnlimited checks the exact sliding measure without a limit.
func TestMaxWindowUnlimited(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ok := `{"number":["919800000001"]}`
	// 5 requests 250 ms apart: any 1 s window (t-1s, t] holds at most 4.
	for range 5 {
		b.post(t, ok)
		b.clock.Advance(250 * time.Millisecond)
	}
	if got := b.s.Stats().MaxWindow; got != 4 {
		t.Errorf("MaxWindow = %d, want 4", got)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	const n = 300
	run := func() (string, Stats) {
		b := setup(t, Config{Seed: 42, FailRate: 0.2, ResetRate: 0.1})
		var seq strings.Builder
		for range n {
			fmt.Fprintf(&seq, "%d,", b.post(t, `{"number":["919800000001"]}`).status)
		}
		return seq.String(), b.s.Stats()
	}
	seq1, st := run()
	seq2, _ := run()
	if seq1 != seq2 {
		t.Error("the same seed gave different fault sequences")
	}
	// Expected 60 503s and 30 drops; allow about four standard deviations.
	if got := st.ByStatus[503]; got < 33 || got > 87 {
		t.Errorf("%d of %d answered 503, want about 60", got, n)
	}
	if got := st.ByStatus[0]; got < 12 || got > 52 {
		t.Errorf("%d of %d dropped, want about 30", got, n)
	}
	if got := st.ByStatus[202]; got+st.ByStatus[503]+st.ByStatus[0] != n || st.Requests != n {
		t.Errorf("ByStatus %v, Requests %d, want %d in all", st.ByStatus, st.Requests, n)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Latency: 30 * time.Millisecond, Jitter: 10 * time.Millisecond})
	for range 3 {
		start := time.Now()
		if r := b.post(t, `{"number":["919800000001"]}`); r.status != 202 {
			t.Fatalf("status %d", r.status)
		}
		if d := time.Since(start); d < 30*time.Millisecond {
			t.Errorf("answer took %v, want at least 30ms", d)
		}
	}
}

func TestLogsWithoutKey(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := setup(t, Config{Logger: logger})
	b.post(t, `{"number":["919800000001","919800000002"]}`)
	b.do(t, "POST", b.s.Path(), `{"number":"919800000001"}`, func(r *http.Request) { r.Header.Set("api-key", testKey+"x") })
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if strings.Contains(out, testKey) {
		t.Errorf("log shows the API key:\n%s", out)
	}
	for _, want := range []string{"status=202 numbers=2", "status=401", "method=POST path=/v1/" + testSID} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Seed: 7, FailRate: 0.1, ResetRate: 0.05, Rate: 1000})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 10 {
				b.post(t, fmt.Sprintf(`{"number":["9198%08d"]}`, i*100+j))
			}
		})
	}
	wg.Wait()
	st := b.s.Stats()
	var sum int64
	for _, n := range st.ByStatus {
		sum += n
	}
	if st.Requests != 80 || sum != 80 || st.Accepted != st.ByStatus[202] || st.Distinct != st.Accepted {
		t.Errorf("inconsistent stats: %+v", st)
	}
}

func TestServe(t *testing.T) {
	t.Parallel()
	s, err := New(Config{SID: testSID, APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("GET /stats = %d", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil after cancel", err)
		}
	case <-time.After(time.Minute): // a hang, not a timing bound
		t.Fatal("Serve did not return after cancel")
	}
	if err := s.ListenAndServe(context.Background(), ln.Addr().String()+"x"); err == nil {
		t.Error("ListenAndServe on a bad address returned nil")
	}
}

func TestParseNumbers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{`"1"`, []string{"1"}, false},
		{`"a, b ,c"`, []string{"a", "b", "c"}, false},
		{`"a,"`, []string{"a", ""}, false},
		{`["a","b"]`, []string{"a", "b"}, false},
		{`[]`, nil, true},
		{`""`, nil, true},
		{``, nil, true},
		{`null`, nil, true},
		{`{}`, nil, true},
		{`[1]`, nil, true},
		{`"\u0000"`, []string{"\x00"}, false},
	}
	for _, tt := range tests {
		got, err := parseNumbers(json.RawMessage(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseNumbers(%s) error = %v, want error %t", tt.in, err, tt.wantErr)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseNumbers(%s) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// FuzzRequest checks that no body makes the server panic or answer other
// than 202 or 400.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{`{"number":["919812345678"]}`, `{"number":"1, 2"}`, `{"number":[1]}`, `[`, `{"number":"+"}`} {
		f.Add(s)
	}
	s, err := New(Config{SID: testSID, APIKey: testKey, RejectSuffix: "0"})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", s.Path(), strings.NewReader(body))
		req.Header.Set("api-key", testKey)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 202 && w.Code != 400 {
			t.Errorf("status %d for %q", w.Code, body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Errorf("answer is not JSON: %q", w.Body.String())
		}
	})
}
