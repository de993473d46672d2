package mockapi

import "time"

// window holds the arrival times of the last second, oldest first. A time t
// belongs to the window ending at now when now-1s < t <= now.
type window struct {
	times []time.Time
	head  int // times[:head] have expired
}

// expire drops the arrivals that are no longer within a second of now.
func (w *window) expire(now time.Time) {
	edge := now.Add(-time.Second)
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

func (w *window) add(t time.Time) { w.times = append(w.times, t) }

// len is the number of arrivals in the window (after expire).
func (w *window) len() int { return len(w.times) - w.head }

// at returns the i-th oldest arrival in the window.
func (w *window) at(i int) time.Time { return w.times[w.head+i] }

func (w *window) reset() { w.times, w.head = nil, 0 }
