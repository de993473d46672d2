package jobstore

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Status is a number's final status in results.csv.
type Status string

// The final statuses of results.csv (README.md, "What you get").
const (
	Accepted Status = "accepted" // the API took it (202)
	Rejected Status = "rejected" // the API refused this number
	Failed   Status = "failed"   // gave up on transient errors, or the job was stopped
)

// Outcome is what one API call (or one decision) settled for the entries
// [Lo, Hi) of a chunk. Outcomes are appended to the chunk's list in the order
// they happen and never changed, so a re-delivered chunk can resume from them.
type Outcome struct {
	Lo int `json:"lo"`
	Hi int `json:"hi"`
	// Split marks a range refused as a whole for invalid input: its halves are
	// to be sent separately. It settles nothing by itself.
	Split    bool   `json:"split,omitempty"`
	Status   Status `json:"s,omitempty"`
	Code     string `json:"c,omitempty"`
	Message  string `json:"m,omitempty"`
	Attempts int    `json:"a,omitempty"`
	// CheckedAt is the time of the deciding call, in Unix milliseconds.
	CheckedAt int64 `json:"t,omitempty"`
}

// Time returns CheckedAt as a time.Time (UTC); zero when unset.
func (o Outcome) Time() time.Time {
	if o.CheckedAt == 0 {
		return time.Time{}
	}
	return time.UnixMilli(o.CheckedAt).UTC()
}

// Final reports whether o settles its entries.
func (o Outcome) Final() bool { return !o.Split && o.Status != "" }

// Redriven reports whether a re-drive of the job drops o, so that its entries
// are sent again: a failed outcome, and a bisection marker (its attempts no
// longer count). Accepted and rejected outcomes stand.
func (o Outcome) Redriven() bool { return o.Split || o.Status == Failed }

func encodeOutcome(o Outcome) (string, error) {
	b, err := json.Marshal(o)
	return string(b), err
}

func decodeOutcome(s string) (Outcome, error) {
	var o Outcome
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		return o, fmt.Errorf("decoding outcome %q: %w", s, err)
	}
	return o, nil
}

// Range is a run of chunk entries [Lo, Hi) still to be sent in one API call.
type Range struct {
	Lo, Hi int
	// Attempts already spent on these entries by calls that did not settle
	// them (the whole-batch calls that were bisected).
	Attempts int
}

// Mid is where a range is bisected.
func (r Range) Mid() int { return r.Lo + (r.Hi-r.Lo)/2 }

// Pending returns the ranges of a chunk of n entries that outcomes have not
// settled, cut at batchSize boundaries and at every bisection recorded, in
// order. It works whatever batch size the earlier worker used.
func Pending(n, batchSize int, outcomes []Outcome) []Range {
	if batchSize < 1 {
		batchSize = 1
	}
	settled := make([]bool, n)
	var splits []Outcome
	for _, o := range outcomes {
		switch {
		case o.Split:
			splits = append(splits, o)
		case o.Final():
			for i := max(o.Lo, 0); i < min(o.Hi, n); i++ {
				settled[i] = true
			}
		}
	}
	cut := make(map[int]bool)
	for _, s := range splits {
		cut[Range{Lo: s.Lo, Hi: s.Hi}.Mid()] = true
	}
	var out []Range
	for i := 0; i < n; {
		if settled[i] {
			i++
			continue
		}
		j := i + 1
		for j < n && !settled[j] && j%batchSize != 0 && !cut[j] {
			j++
		}
		r := Range{Lo: i, Hi: j}
		for _, s := range splits {
			if s.Lo <= r.Lo && r.Hi <= s.Hi {
				r.Attempts = max(r.Attempts, s.Attempts)
			}
		}
		out = append(out, r)
		i = j
	}
	return out
}

// Settle returns, for each entry of a chunk of n entries, the outcome that
// settled it (the first final one recorded), and whether all are settled.
func Settle(n int, outcomes []Outcome) ([]Outcome, bool) {
	per := make([]Outcome, n)
	set := make([]bool, n)
	count := 0
	for _, o := range outcomes {
		if !o.Final() {
			continue
		}
		for i := max(o.Lo, 0); i < min(o.Hi, n); i++ {
			if !set[i] {
				per[i], set[i] = o, true
				count++
			}
		}
	}
	return per, count == n && !slices.Contains(set, false)
}
