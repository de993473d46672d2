package mockapi

import (
	"sort"
	"time"
)

// window holds the arrival times of the last seconds, oldest first. A time
// t belongs to the window ending at e when e-1s < t <= e. Requests are
// stamped when they arrived and handled later, not always in that order, so
// a time may come in before some that it precedes.
type window struct {
	times []time.Time
	head  int // times[:head] have expired
}

// keep is how long before the newest arrival one is kept: a second of
// window, and the rest for a request handled late (a stalled handler, a
// slow body) to still find those that preceded it.
const keep = 10 * time.Second

// expire drops the arrivals older than keep before t or before the newest
// arrival, whichever is later: relative to t alone, a request handled late
// would drop what a later arrival, handled already, still needs, and the
// late one could not see those that preceded it.
func (w *window) expire(t time.Time) {
	if n := len(w.times); n > w.head && w.times[n-1].After(t) {
		t = w.times[n-1]
	}
	edge := t.Add(-keep)
	for w.head < len(w.times) && !w.times[w.head].After(edge) {
		w.head++
	}
	// Compact once the dead prefix dominates, so memory follows the rate.
	if w.head > 64 && w.head*2 > len(w.times) {
		n := copy(w.times, w.times[w.head:])
		w.times = w.times[:n]
		w.head = 0
	}
}

// add inserts t in order; usually at the end.
func (w *window) add(t time.Time) {
	i := len(w.times)
	for i > w.head && w.times[i-1].After(t) {
		i--
	}
	w.times = append(w.times, time.Time{})
	copy(w.times[i+1:], w.times[i:])
	w.times[i] = t
}

// peak returns the most arrivals in one window that would hold t, t not
// counted: the window ending at t, and those ending at a later arrival
// less than a second after t.
func (w *window) peak(t time.Time) int {
	live := w.times[w.head:]
	// upTo returns how many arrivals are at or before e.
	upTo := func(e time.Time) int { return sort.Search(len(live), func(i int) bool { return live[i].After(e) }) }
	i := upTo(t)
	n := i - upTo(t.Add(-time.Second))
	for j := i; j < len(live) && live[j].Sub(t) < time.Second; j++ {
		n = max(n, j+1-upTo(live[j].Add(-time.Second)))
	}
	return n
}

func (w *window) reset() { w.times, w.head = nil, 0 }
