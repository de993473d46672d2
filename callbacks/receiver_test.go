package callbacks_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/callbacks"
	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const token = "cb-token-0123456789"

var now = time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)

type bundle struct {
	ctx   context.Context
	store *capstore.Store
	recv  *callbacks.Receiver
	h     http.Handler
}

func setup(t *testing.T, cfg callbacks.Config) bundle {
	t.Helper()
	t.Parallel()
	store := capstore.New(redistest.Shared(t).Client(t), capstore.Options{Prefix: redistest.NewPrefix(t)})
	if cfg.Token == "-" {
		cfg.Token = ""
	} else if cfg.Token == "" {
		cfg.Token = token
	}
	cfg.Now = func() time.Time { return now }
	r, err := callbacks.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return bundle{ctx: context.Background(), store: store, recv: r, h: r.Handler()}
}

type req struct {
	method, target, ctype, body string
	header                      map[string]string
	remote                      string
}

func (b bundle) do(t *testing.T, r req) (int, string) {
	t.Helper()
	hr := httptest.NewRequest(cmp.Or(r.method, http.MethodPost), cmp.Or(r.target, "/callback"), strings.NewReader(r.body))
	if r.ctype != "" {
		hr.Header.Set("Content-Type", r.ctype)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, hr)
	return w.Code, w.Body.String()
}

func (b bundle) record(t *testing.T, n uint64) capstore.Record {
	t.Helper()
	recs, err := b.store.Lookup(b.ctx, []uint64{n})
	if err != nil {
		t.Fatal(err)
	}
	return recs[0]
}

var (
	capable    = capstore.Record{Capability: capstore.Capable, At: now}
	notCapable = capstore.Record{Capability: capstore.NotCapable, At: now}
)

func TestToken(t *testing.T) {
	b := setup(t, callbacks.Config{})
	body := `{"number":"919876543210","status":"capable"}`
	for name, hdr := range map[string]map[string]string{
		"wrong":           {"Authorization": "Bearer nope"},
		"missing":         {"Authorization": ""},
		"bare wrong":      {"Authorization": token + "x"},
		"basic wrong":     {"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(token+"x"))},
		"basic malformed": {"Authorization": "Basic " + token + "!"},
	} {
		code, got := b.do(t, req{body: body, header: hdr})
		if code != http.StatusUnauthorized || !strings.Contains(got, "token") {
			t.Errorf("%s token: %d %s, want 401 naming the token", name, code, got)
		}
		if strings.Contains(got, token) {
			t.Errorf("answer shows the token: %s", got)
		}
	}
	if r := b.record(t, 919876543210); !r.IsZero() {
		t.Fatalf("a refused callback was stored: %+v", r)
	}
	// The bare token is accepted as well as Bearer.
	if code, got := b.do(t, req{body: body, header: map[string]string{"Authorization": token}}); code != http.StatusOK {
		t.Fatalf("bare token: %d %s", code, got)
	}
	if r := b.record(t, 919876543210); r != capable {
		t.Fatalf("record %+v", r)
	}
}

// A profile with basic auth sends "Basic " and base64("user:password"):
// with the token set to "user:password", it is accepted.
func TestBasicAuth(t *testing.T) {
	const cred = "capcheck:s3cret-pw"
	b := setup(t, callbacks.Config{Token: cred})
	body := `{"number":"919876543210","status":"capable"}`
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(cred))
	if code, got := b.do(t, req{body: body, header: map[string]string{"Authorization": basic}}); code != http.StatusOK {
		t.Fatalf("basic auth: %d %s, want 200", code, got)
	}
	if r := b.record(t, 919876543210); r != capable {
		t.Fatalf("record %+v", r)
	}
	wrong := "Basic " + base64.StdEncoding.EncodeToString([]byte("capcheck:other"))
	if code, got := b.do(t, req{body: body, header: map[string]string{"Authorization": wrong}}); code != http.StatusUnauthorized {
		t.Fatalf("basic auth, wrong password: %d %s, want 401", code, got)
	}
	// A token set to the whole header value, as before basic auth was
	// read, still matches.
	t.Run("whole header value", func(t *testing.T) {
		whole := setup(t, callbacks.Config{Token: basic})
		if code, got := whole.do(t, req{body: body, header: map[string]string{"Authorization": basic}}); code != http.StatusOK {
			t.Fatalf("token = the whole Basic header value: %d %s, want 200", code, got)
		}
	})
}

func TestCustomHeaderAndAllow(t *testing.T) {
	b := setup(t, callbacks.Config{Header: "X-Api-Key", Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}})
	body := `{"number":"+14155552671","status":"not_capable"}`
	hdr := map[string]string{"X-Api-Key": token}
	if code, _ := b.do(t, req{body: body, header: hdr, remote: "192.0.2.1:5000"}); code != http.StatusForbidden {
		t.Errorf("source outside --callback-allow: %d, want 403", code)
	}
	if code, _ := b.do(t, req{body: body, remote: "10.1.2.3:5000"}); code != http.StatusUnauthorized {
		t.Errorf("token in Authorization instead of X-Api-Key: %d, want 401", code)
	}
	if code, got := b.do(t, req{body: body, header: hdr, remote: "10.1.2.3:5000"}); code != http.StatusOK {
		t.Fatalf("allowed: %d %s", code, got)
	}
	if r := b.record(t, 14155552671); r != notCapable {
		t.Fatalf("record %+v", r)
	}
}

func TestNoTokenOnLoopback(t *testing.T) {
	b := setup(t, callbacks.Config{Token: "-"})
	if code, got := b.do(t, req{body: `{"number":"447911123456","status":"capable"}`, header: map[string]string{"Authorization": ""}}); code != http.StatusOK {
		t.Fatalf("%d %s", code, got)
	}
}

func TestBodies(t *testing.T) {
	b := setup(t, callbacks.Config{})
	cases := []struct {
		name string
		r    req
		want map[uint64]capstore.Record
	}{
		{"JSON object", req{ctype: "application/json", body: `{"number":"919876500001","status":"capable"}`},
			map[uint64]capstore.Record{919876500001: capable}},
		{"JSON number and bool", req{body: `{"number":919876500002,"status":false}`},
			map[uint64]capstore.Record{919876500002: notCapable}},
		{"JSON array", req{ctype: "application/json", body: `[{"number":"919876500003","status":"capable"},{"number":"+919876500004","status":"NOT_CAPABLE"}]`},
			map[uint64]capstore.Record{919876500003: capable, 919876500004: notCapable}},
		{"form", req{ctype: "application/x-www-form-urlencoded", body: "number=919876500005&status=capable"},
			map[uint64]capstore.Record{919876500005: capable}},
		{"GET query", req{method: http.MethodGet, target: "/callback?number=%2B919876500006&status=not_capable"},
			map[uint64]capstore.Record{919876500006: notCapable}},
		{"PUT", req{method: http.MethodPut, body: `{"number":"9876500007","status":"capable"}`},
			map[uint64]capstore.Record{919876500007: capable}},
		{"unknown status", req{body: `{"number":"919876500008","status":"pending"}`},
			map[uint64]capstore.Record{919876500008: {Capability: capstore.Unknown, At: now}}},
	}
	for _, c := range cases {
		code, got := b.do(t, c.r)
		if code != http.StatusOK || !strings.Contains(got, `"unsolicited"`) {
			t.Errorf("%s: %d %s, want 200 unsolicited", c.name, code, got)
			continue
		}
		for n, want := range c.want {
			if r := b.record(t, n); r != want {
				t.Errorf("%s: record of %d = %+v, want %+v", c.name, n, r, want)
			}
		}
	}
}

func TestNestedFields(t *testing.T) {
	b := setup(t, callbacks.Config{NumberField: "data.mobile", StatusField: "data.result.soip",
		Capable: []string{"YES"}, NotCapable: []string{"NO"}})
	code, got := b.do(t, req{body: `{"event":"x","data":{"mobile":"919876500011","result":{"soip":"yes"}}}`})
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, got)
	}
	if r := b.record(t, 919876500011); r != capable {
		t.Fatalf("record %+v", r)
	}
	code, got = b.do(t, req{body: `{"data":{"number":"919876500012","result":{"soip":"no"}}}`})
	if code != http.StatusBadRequest || !strings.Contains(got, `data.mobile`) {
		t.Errorf("wrong nesting: %d %s, want 400 naming data.mobile", code, got)
	}
}

func TestBadRequests(t *testing.T) {
	b := setup(t, callbacks.Config{MaxBody: 1 << 10})
	cases := []struct {
		name string
		r    req
		code int
		says string
	}{
		{"missing number", req{body: `{"msisdn":"919876500021","status":"capable"}`}, 400, `no number field \"number\"`},
		{"missing status", req{body: `{"number":"919876500021"}`}, 400, `no status field`},
		{"not JSON", req{ctype: "application/json", body: `{"number":`}, 400, "not valid JSON"},
		{"invalid number", req{body: `{"number":"12","status":"capable"}`}, 400, "not a valid phone number"},
		{"empty", req{}, 400, "empty"},
		{"oversized", req{body: `{"number":"919876500021","status":"` + strings.Repeat("x", 2<<10) + `"}`}, 413, "larger than"},
		{"method", req{method: http.MethodDelete}, 405, "POST"},
		{"form without number", req{ctype: "application/x-www-form-urlencoded", body: "status=capable"}, 400, "form body has no number field"},
	}
	for _, c := range cases {
		code, got := b.do(t, c.r)
		if code != c.code || !strings.Contains(got, c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, code, got, c.code, c.says)
		}
	}
	if r := b.record(t, 919876500021); !r.IsZero() {
		t.Errorf("a bad request stored %+v", r)
	}
	// An array with one bad element: the good ones are stored, the answer
	// names the bad one.
	code, got := b.do(t, req{body: `[{"number":"919876500022","status":"capable"},{"status":"capable"}]`})
	if code != 400 || !strings.Contains(got, "element 1") {
		t.Errorf("array with a bad element: %d %s", code, got)
	}
	if r := b.record(t, 919876500022); r != capable {
		t.Errorf("the good element: %+v", r)
	}
}

func TestAwaitedCallbacks(t *testing.T) {
	b := setup(t, callbacks.Config{})
	ord, err := b.store.RegisterJob(b.ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	items := []capstore.Awaited{{Number: 919876500031, Index: 0}, {Number: 919876500032, Index: 1}}
	if err := b.store.Await(b.ctx, "job", ord, items, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	body := `[{"number":"919876500031","status":"capable"},{"number":"919876500032","status":"weird"}]`
	if code, got := b.do(t, req{body: body}); code != 200 || !strings.Contains(got, `"stored":2`) {
		t.Fatalf("%d %s", code, got)
	}
	if code, got := b.do(t, req{body: body}); code != 200 || !strings.Contains(got, `"duplicate":2`) {
		t.Fatalf("again: %d %s", code, got)
	}
	jc, err := b.store.JobCounts(b.ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if jc.Received != 2 || jc.Capable != 1 || jc.Unknown != 1 || jc.Duplicates != 2 || jc.RawUnknown["weird"] != 1 {
		t.Errorf("job counts %+v", jc)
	}
}

func TestOverloaded(t *testing.T) {
	t.Parallel()
	store := capstore.New(redistest.Shared(t).Client(t), capstore.Options{Prefix: redistest.NewPrefix(t)})
	r, err := callbacks.New(store, callbacks.Config{QueueLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Not started: nothing leaves the queue.
	hr := httptest.NewRequest(http.MethodPost, "/callback", strings.NewReader(`[{"number":"919876500041","status":"capable"},{"number":"919876500042","status":"capable"}]`))
	w := httptest.NewRecorder()
	r.Handler().ServeHTTP(w, hr)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("%d %q, want 503 with Retry-After", w.Code, w.Header())
	}
}
