package mockapi

import (
	"slices"
	"testing"
	"time"
)

// TestWindowOutOfOrder checks the sliding count when an arrival is handled
// after later ones: it counts in every second that holds it.
func TestWindowOutOfOrder(t *testing.T) {
	t.Parallel()
	at := func(ms int) time.Time { return fakeEpoch.Add(time.Duration(ms) * time.Millisecond) }
	var w window
	w.add(at(0))
	w.add(at(900))
	for _, tt := range []struct {
		ms, want int
	}{
		{500, 2},  // the second ending at 900 holds 0, 500 and 900
		{-150, 1}, // the seconds ending at -150 and at 0; 900 is over a second later
		{901, 2},  // ending at 901: 0 and 900
		{1000, 1}, // 0 is out of every second that holds 1000
		{1950, 0},
	} {
		if got := w.peak(at(tt.ms)); got != tt.want {
			t.Errorf("peak at %d ms = %d, want %d", tt.ms, got, tt.want)
		}
	}
	w.add(at(500))
	w.add(at(-50))
	if want := []time.Time{at(-50), at(0), at(500), at(900)}; !slices.Equal(w.times[w.head:], want) {
		t.Errorf("times %v, want %v", w.times[w.head:], want)
	}
	if got := w.peak(at(950)); got != 3 {
		t.Errorf("peak at 950 ms = %d, want 3 (0, 500, 900)", got)
	}
	w.expire(at(10400)) // keeps what came less than 10 s before: 500 and 900
	if want := []time.Time{at(500), at(900)}; !slices.Equal(w.times[w.head:], want) {
		t.Errorf("after expire: %v, want %v", w.times[w.head:], want)
	}
	w.expire(at(0)) // a late request: relative to the newest, 900
	if want := []time.Time{at(500), at(900)}; !slices.Equal(w.times[w.head:], want) {
		t.Errorf("after a late expire: %v, want %v", w.times[w.head:], want)
	}
}
