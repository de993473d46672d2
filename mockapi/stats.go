package mockapi

import (
	"maps"
	"net/http"
	"strconv"
)

// Stats counts what the server saw. Requests, ByStatus and MaxWindow cover
// every request except those to /stats and /stats/reset.
type Stats struct {
	// Requests is the number of API requests, whatever their answer.
	Requests int64 `json:"requests"`
	// ByStatus counts answers by HTTP status; 0 counts dropped connections.
	ByStatus map[int]int64 `json:"by_status"`
	// Accepted counts the numbers of 202 answers.
	Accepted int64 `json:"accepted"`
	// Distinct counts the different numbers ever accepted.
	Distinct int64 `json:"distinct"`
	// Repeated counts acceptances of a number beyond its first.
	Repeated int64 `json:"repeated"`
	// RateLimited counts 429 answers.
	RateLimited int64 `json:"rate_limited"`
	// MaxWindow is the largest number of requests that arrived within any
	// sliding 1-second window, counting those answered 429 or dropped: it
	// measures the clients' pacing, not the server's answers.
	MaxWindow int `json:"max_window"`
	// PerSecond counts API requests by the Unix second they arrived in, and
	// FirstArrivalUS, LastArrivalUS and LastAnswerUS are when the first and
	// last arrived and when the last answer was written (Unix µs), so that
	// a benchmark reads the rate a fleet held and its idle ends.
	PerSecond      map[int64]int64 `json:"per_second,omitempty"`
	FirstArrivalUS int64           `json:"first_arrival_us,omitempty"`
	LastArrivalUS  int64           `json:"last_arrival_us,omitempty"`
	LastAnswerUS   int64           `json:"last_answer_us,omitempty"`
	// CallbacksSent counts callback requests sent (retries included),
	// CallbacksDelivered those answered 2xx, CallbackRetries those to be
	// sent again, CallbacksPending the callbacks not delivered yet.
	CallbacksSent      int64 `json:"callbacks_sent,omitempty"`
	CallbacksDelivered int64 `json:"callbacks_delivered,omitempty"`
	CallbackRetries    int64 `json:"callback_retries,omitempty"`
	CallbacksPending   int64 `json:"callbacks_pending,omitempty"`
	// Numbers maps each accepted number (digits, no '+') to how many times it
	// was accepted; only with Config.TrackNumbers.
	Numbers map[string]int `json:"numbers,omitempty"`
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot()
}

// ResetStats returns the counters and zeroes them, atomically. The rate
// limit keeps its state: it belongs to the simulated provider, not to the
// statistics.
func (s *Server) ResetStats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.snapshot()
	s.clearStats()
	return st
}

// snapshot copies the counters; s.mu must be held.
func (s *Server) snapshot() Stats {
	st := s.st
	st.ByStatus = maps.Clone(s.st.ByStatus)
	st.PerSecond = maps.Clone(s.st.PerSecond)
	if c := s.callbacks; c != nil {
		st.CallbacksSent, st.CallbacksDelivered = c.sent.Load(), c.delivered.Load()
		st.CallbackRetries, st.CallbacksPending = c.retries.Load(), c.pending.Load()
	}
	if s.cfg.TrackNumbers {
		st.Numbers = make(map[string]int, len(s.seen))
		for k, n := range s.seen {
			st.Numbers[strconv.FormatUint(k, 10)] = int(n)
		}
	}
	return st
}

// clearStats zeroes the counters; s.mu must be held (or s unshared).
func (s *Server) clearStats() {
	s.st = Stats{ByStatus: map[int]int64{}, PerSecond: map[int64]int64{}}
	s.seen = map[uint64]uint32{}
	s.arrivals.reset()
}

// serveStats answers GET /stats, or POST /stats/reset when reset is set.
func (s *Server) serveStats(w http.ResponseWriter, r *http.Request, reset bool) int {
	want := http.MethodGet
	if reset {
		want = http.MethodPost
	}
	if r.Method != want {
		w.Header().Set("Allow", want)
		writeJSON(w, http.StatusMethodNotAllowed, body(codeMethod, "Method Not Allowed", "use "+want))
		return http.StatusMethodNotAllowed
	}
	var st Stats
	if reset {
		st = s.ResetStats()
	} else {
		st = s.Stats()
	}
	writeJSON(w, http.StatusOK, st)
	return http.StatusOK
}
