package mockapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capcheck/capcheck/mockapi"
)

// The capability and flip functions are fixed: these rows stay true.
func TestCapable(t *testing.T) {
	t.Parallel()
	capableFn, flippedFn := mockapi.Capable, mockapi.Flipped
	for _, c := range []struct {
		name     string
		f        func(string, float64) bool
		number   string
		fraction float64
		want     bool
	}{
		{"Capable", capableFn, "919876543210", 0, false},
		{"Capable", capableFn, "919876543210", 1, true},
		{"Capable", capableFn, "919876500002", 0.5, false},
		{"Capable", capableFn, "919876500001", 0.5, true},
		{"Capable", capableFn, "14155552671", 0.5, true},
		{"Capable", capableFn, "not a number", 1, false},
		{"Capable", capableFn, "+919876543210", 1, true},
		{"Flipped", flippedFn, "919876543210", 0, false},
		{"Flipped", flippedFn, "919876543210", 1, true},
		{"Flipped", flippedFn, "not a number", 1, false},
		{"Flipped", flippedFn, "+919876543210", 1, true},
	} {
		if got := c.f(c.number, c.fraction); got != c.want {
			t.Errorf("%s(%q, %v) = %v, want %v", c.name, c.number, c.fraction, got, c.want)
		}
	}
	// The '+' does not matter, and about the fraction asked is capable.
	n, capable := 20000, 0
	for i := range n {
		d := fmt.Sprintf("9198%08d", i)
		if mockapi.Capable(d, 0.3) != mockapi.Capable("+"+d, 0.3) {
			t.Fatalf("Capable differs with and without '+' for %s", d)
		}
		if mockapi.Capable(d, 0.3) {
			capable++
		}
		if mockapi.Capable(d, 0.3) && !mockapi.Capable(d, 0.31) {
			t.Fatalf("capable at 0.3 but not at 0.31: %s", d)
		}
	}
	if share := float64(capable) / float64(n); share < 0.28 || share > 0.32 {
		t.Errorf("share capable at 0.3 = %.3f", share)
	}
	if got := mockapi.CapabilityStatus("919876543210", 1); got != mockapi.StatusCapable {
		t.Errorf("CapabilityStatus = %q", got)
	}
}

// Flips are a fixed function of the number, independent of Capable's
// fraction: a test knows exactly which numbers changed.
func TestFlipped(t *testing.T) {
	t.Parallel()
	n, flipped, both := 100000, 0, 0
	for i := range n {
		d := fmt.Sprintf("9198%08d", i)
		f := mockapi.Flipped(d, 0.01)
		if f {
			flipped++
		}
		if f && !mockapi.Flipped(d, 0.02) {
			t.Fatalf("flipped at 0.01 but not at 0.02: %s", d)
		}
		if f && mockapi.Capable(d, 0.5) {
			both++
		}
		if mockapi.CapableAfterFlips(d, 0.5, 0.01) != (mockapi.Capable(d, 0.5) != f) {
			t.Fatalf("CapableAfterFlips(%s) is not Capable reversed by Flipped", d)
		}
		if mockapi.CapableAfterFlips(d, 0.5, 0) != mockapi.Capable(d, 0.5) {
			t.Fatalf("CapableAfterFlips(%s, 0.5, 0) differs from Capable", d)
		}
	}
	if share := float64(flipped) / float64(n); share < 0.009 || share > 0.011 {
		t.Errorf("share flipped at 0.01 = %.4f", share)
	}
	// Independent of Capable: about half the flipped numbers were capable.
	if share := float64(both) / float64(flipped); share < 0.4 || share > 0.6 {
		t.Errorf("share of flipped numbers capable at 0.5 = %.2f", share)
	}
}

// receiver is a callback endpoint that refuses wrong tokens and records
// what it accepted.
type receiver struct {
	mu       sync.Mutex
	got      map[string][]string // number -> statuses, in order
	refused  int
	accepted chan struct{}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get("X-Token") != "Bearer cb-secret" {
		r.mu.Lock()
		r.refused++
		r.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var body struct{ Number, Status string }
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.got[body.Number] = append(r.got[body.Number], body.Status)
	r.mu.Unlock()
	r.accepted <- struct{}{}
}

func TestCallbacks(t *testing.T) {
	t.Parallel()
	recv := &receiver{got: map[string][]string{}, accepted: make(chan struct{}, 100)}
	cb := httptest.NewServer(recv)
	t.Cleanup(cb.Close)
	s, err := mockapi.New(mockapi.Config{SID: "S", APIKey: "K", Seed: 7,
		CallbackURL: cb.URL + "/callback", CallbackToken: "cb-secret", CallbackHeader: "X-Token",
		CallbackRefuseRate: 0.5, CallbackDuplicateRate: 1, CapableFraction: 0.5, FlipFraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	api := httptest.NewServer(s.Handler())
	t.Cleanup(api.Close)
	numbers := []string{"919876500001", "919876500002", "+919876500003", "919876500004"}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, api.URL+s.Path(),
		strings.NewReader(`{"number":["`+strings.Join(numbers, `","`)+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("api-key", "K")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("API answered %d", resp.StatusCode)
	}
	for range 2 * len(numbers) { // every callback twice (duplicate rate 1)
		<-recv.accepted
	}
	st := s.Stats()
	for st.CallbacksDelivered < 8 { // counted once the answer is read
		<-time.After(time.Millisecond)
		st = s.Stats()
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	flipped := 0
	for _, n := range numbers {
		want := mockapi.StatusNotCapable
		if mockapi.CapableAfterFlips(n, 0.5, 0.5) {
			want = mockapi.StatusCapable
		}
		if mockapi.Flipped(n, 0.5) {
			flipped++
		}
		if got := recv.got[n]; len(got) != 2 || got[0] != want || got[1] != want {
			t.Errorf("callbacks for %s: %v, want %s twice", n, got, want)
		}
	}
	if flipped == 0 || flipped == len(numbers) {
		t.Errorf("%d of %d numbers flipped: the test shows nothing of flips", flipped, len(numbers))
	}
	if st.CallbackRetries != int64(recv.refused) || st.CallbacksDelivered != 8 {
		t.Errorf("stats %+v; receiver refused %d", st, recv.refused)
	}
}
