package mockapi

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// bruteMax returns the most times of set in one sliding second (e-1s, e]
// that also holds t (t not counted), trying every window end that matters.
func bruteMax(set []time.Time, t time.Time) int {
	ends := []time.Time{t}
	for _, a := range set {
		if a.After(t) && a.Sub(t) < time.Second {
			ends = append(ends, a)
		}
	}
	best := 0
	for _, e := range ends {
		best = max(best, inSecond(set, e))
	}
	return best
}

// inSecond counts the times of set in (e-1s, e].
func inSecond(set []time.Time, e time.Time) int {
	n := 0
	for _, a := range set {
		if a.After(e.Add(-time.Second)) && !a.After(e) {
			n++
		}
	}
	return n
}

// maxAny is the most times of set in any sliding second.
func maxAny(set []time.Time) int {
	best := 0
	for _, e := range set {
		best = max(best, inSecond(set, e))
	}
	return best
}

type lagged struct{ arrive, handle time.Time }

// genLagged makes n arrivals at about rate/s, each handled after a random
// delay under lag, in the order they are handled.
func genLagged(r *rand.Rand, n int, rate float64, lag time.Duration) []lagged {
	var rs []lagged
	t := fakeEpoch
	for range n {
		gap := time.Duration(r.ExpFloat64() / rate * float64(time.Second))
		if r.IntN(10) == 0 {
			gap = 0 // the same stamp
		}
		t = t.Add(gap)
		h := t
		if lag > 0 {
			h = t.Add(time.Duration(r.Int64N(int64(lag))))
		}
		rs = append(rs, lagged{t, h})
	}
	slices.SortStableFunc(rs, func(a, b lagged) int { return a.handle.Compare(b.handle) })
	return rs
}

// TestWindowAgainstBruteForce feeds requests to a window as decide does,
// for the limit and for MaxWindow, and checks each answer against a
// brute-force count over every arrival so far, with handling lags up to
// several seconds.
func TestWindowAgainstBruteForce(t *testing.T) {
	for _, lag := range []time.Duration{0, 500 * time.Millisecond, 999 * time.Millisecond, 2500 * time.Millisecond, 5 * time.Second} {
		for seed := range uint64(200) {
			r := rand.New(rand.NewPCG(seed, uint64(lag)))
			limit := 1 + r.IntN(8)
			rs := genLagged(r, 200, float64(limit)*(0.5+r.Float64()), lag)
			var adm, all window
			var admitted, seen []time.Time
			for k, q := range rs {
				where := fmt.Sprintf("lag %v seed %d limit %d request %d (arrived %v, handled %v)",
					lag, seed, limit, k, q.arrive.Sub(fakeEpoch), q.handle.Sub(fakeEpoch))
				all.expire(q.arrive)
				if got, want := all.peak(q.arrive), bruteMax(seen, q.arrive); got != want {
					t.Fatalf("%s: peak of all %d, brute force %d", where, got, want)
				}
				all.add(q.arrive)
				seen = append(seen, q.arrive)
				adm.expire(q.arrive)
				if got, want := adm.peak(q.arrive) >= limit, bruteMax(admitted, q.arrive) >= limit; got != want {
					t.Fatalf("%s: window refuses %t, brute force %t", where, got, want)
				}
				if adm.peak(q.arrive) < limit {
					adm.add(q.arrive)
					admitted = append(admitted, q.arrive)
				}
			}
			if m := maxAny(admitted); m > limit {
				t.Fatalf("lag %v seed %d: admitted %d in one second, limit %d", lag, seed, m, limit)
			}
		}
	}
}

// Through decide: limit 1; arrivals at 0 and 2.0 s are handled first, then
// one that arrived at 0.5 s (its handler stalled 1.5 s): the second
// (-0.5 s, 0.5 s] would hold two.
func TestDecideLateRequestOverLimit(t *testing.T) {
	s, err := New(Config{SID: testSID, APIKey: testKey, Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, ms := range []int{0, 2000, 500} {
		req := httptest.NewRequest(http.MethodPost, s.Path(), strings.NewReader(`{"number":["919800000001"]}`))
		req.Header.Set("api-key", testKey)
		req.Header.Set("Content-Type", "application/json")
		got = append(got, s.decide(req, fakeEpoch.Add(time.Duration(ms)*time.Millisecond)).status)
	}
	if got[2] != http.StatusTooManyRequests {
		t.Errorf("statuses %v: the request at 0.5 s shares a second with the one at 0, want 429", got)
	}
	if st := s.Stats(); st.MaxWindow != 2 {
		t.Errorf("MaxWindow %d, want 2 (0 and 0.5 s)", st.MaxWindow)
	}
}
