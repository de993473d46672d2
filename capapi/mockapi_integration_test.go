package capapi_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/mockapi"
)

// TestAgainstMockAPI runs the client against the simulator: every answer the
// simulator can give must land in the right class.
func TestAgainstMockAPI(t *testing.T) {
	t.Parallel()
	good := []string{"+919812345678", "+14155550123"}
	tests := []struct {
		name      string
		mock      mockapi.Config
		client    func(*capapi.Config)
		numbers   []string
		calls     int // the result of the last call is checked
		wantClass capapi.Class
		wantCode  string
		wantMsg   string // substring of Message
		wantErr   string // substring of Err
	}{
		{name: "accepted", numbers: good, wantClass: capapi.Accepted, wantCode: "MSG402", wantMsg: "Request Successfully Processed"},
		{name: "accepted E.164", client: func(c *capapi.Config) { c.WireE164 = true; c.CallbackProfileID = "CB1" },
			numbers: good, wantClass: capapi.Accepted, wantCode: "MSG402"},
		{name: "invalid number", mock: mockapi.Config{RejectSuffix: "678"}, numbers: good,
			wantClass: capapi.Invalid, wantCode: "RBC529", wantMsg: "Invalid input or validation error!: invalid number: 919812345678"},
		{name: "too many numbers", mock: mockapi.Config{MaxBatch: 1}, numbers: good,
			wantClass: capapi.Invalid, wantCode: "RBC529", wantMsg: "too many numbers"},
		{name: "wrong key", client: func(c *capapi.Config) { c.APIKey = "wrong-key-123" }, numbers: good,
			wantClass: capapi.Unauthorized, wantCode: "RBC401", wantMsg: "Unauthorized: invalid api key"},
		{name: "wrong SID", client: func(c *capapi.Config) { c.SID = "OTHER" }, numbers: good,
			wantClass: capapi.Fatal, wantCode: "RBC404", wantErr: "check the API base URL and SID"},
		{name: "rate limited", mock: mockapi.Config{Rate: 1}, numbers: good, calls: 2,
			wantClass: capapi.RateLimited, wantCode: "RBC429", wantMsg: "Too Many Requests"},
		{name: "5xx", mock: mockapi.Config{FailRate: 1}, numbers: good,
			wantClass: capapi.Transient, wantCode: "RBC503", wantErr: "HTTP 503"},
		{name: "reset", mock: mockapi.Config{ResetRate: 1}, numbers: good,
			wantClass: capapi.Transient, wantErr: "POST http://"},
		{name: "slow", mock: mockapi.Config{Latency: time.Second}, client: func(c *capapi.Config) { c.Timeout = 50 * time.Millisecond },
			numbers: good, wantClass: capapi.Transient, wantErr: "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := againstMock(t, tt.mock, tt.client)
			var res capapi.Result
			for range max(tt.calls, 1) {
				res = c.Check(context.Background(), tt.numbers)
			}
			if res.Class != tt.wantClass || res.Code != tt.wantCode || !strings.Contains(res.Message, tt.wantMsg) {
				t.Errorf("Check = %v, want %v %s %q", res, tt.wantClass, tt.wantCode, tt.wantMsg)
			}
			if (res.Err == nil) != (tt.wantErr == "") || res.Err != nil && !strings.Contains(res.Err.Error(), tt.wantErr) {
				t.Errorf("Err = %v, want %q", res.Err, tt.wantErr)
			}
			if tt.wantClass == capapi.RateLimited && res.RetryAfter != time.Second {
				t.Errorf("RetryAfter = %v, want 1s", res.RetryAfter)
			}
			if strings.Contains(res.String(), testKey) {
				t.Errorf("result shows the API key: %v", res)
			}
		})
	}
}

// TestMockCountsClientNumbers checks that what the client sends is what the
// simulator counts, in both wire forms.
func TestMockCountsClientNumbers(t *testing.T) {
	t.Parallel()
	mock, err := mockapi.New(mockapi.Config{SID: testSID, APIKey: testKey, TrackNumbers: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mock.Handler())
	defer srv.Close()
	for _, e164 := range []bool{false, true} {
		c, err := capapi.New(capapi.Config{BaseURL: srv.URL, SID: testSID, APIKey: testKey, WireE164: e164})
		if err != nil {
			t.Fatal(err)
		}
		if res := c.Check(context.Background(), []string{"+919812345678"}); res.Class != capapi.Accepted {
			t.Fatalf("Check = %v", res)
		}
	}
	st := mock.Stats()
	if st.Distinct != 1 || st.Repeated != 1 || st.Numbers["919812345678"] != 2 {
		t.Errorf("stats %+v, want one number accepted twice", st)
	}
}

func TestCanceledAgainstMockAPI(t *testing.T) {
	t.Parallel()
	c := againstMock(t, mockapi.Config{Latency: time.Second}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	res := c.Check(ctx, []string{"+919812345678"})
	if res.Class != capapi.Transient || !errors.Is(res.Err, context.DeadlineExceeded) || !strings.Contains(res.Err.Error(), "canceled") {
		t.Errorf("Check = %v, want transient wrapping the caller's context error", res)
	}
}

// BenchmarkCheckMockAPI measures a client call against the simulator, with
// as many concurrent callers as GOMAXPROCS.
func BenchmarkCheckMockAPI(b *testing.B) {
	c := againstMock(b, mockapi.Config{}, nil)
	batch := make([]string, 100)
	for i := range batch {
		batch[i] = "+9198" + strings.Repeat("0", 7) + string(rune('0'+i%10))
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := c.Check(context.Background(), batch); res.Class != capapi.Accepted {
				b.Errorf("Check = %v", res)
				return
			}
		}
	})
}

// againstMock starts a simulator of mcfg, expecting the test's SID and key,
// until tb ends, and returns a client of it, its options changed by client
// when not nil.
func againstMock(tb testing.TB, mcfg mockapi.Config, client func(*capapi.Config)) *capapi.Client {
	tb.Helper()
	mcfg.SID, mcfg.APIKey = testSID, testKey
	mock, err := mockapi.New(mcfg)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(mock.Handler())
	tb.Cleanup(srv.Close)
	ccfg := capapi.Config{BaseURL: srv.URL, SID: testSID, APIKey: testKey}
	if client != nil {
		client(&ccfg)
	}
	c, err := capapi.New(ccfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
