package jobstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
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
	// Cached: not sent, the capability memory answered it (results.csv only).
	Cached Status = "cached"
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

// An outcome is stored packed (about 12 bytes when its texts are those of
// its chunk's first outcome, as most are) rather than as JSON (about 100):
// the outcome lists are most of a job's bytes in Redis at small batches.
//
//	[0] packedVersion
//	[1] flags: the status (0 none, 1..3 as in packedStatus), split,
//	    textsOfFirst
//	[2] the header's length, these three bytes included
//	    then uvarints lo, hi, attempts, checked_at
//	then, unless textsOfFirst: uvarint length and bytes of code, the same of
//	message. textsOfFirst says they are those of the list's first outcome
//	(which always has its own); the record script sets it (see packedLua).
//
// An outcome that does not fit (an unknown status, a negative field) is
// stored as JSON, and lists written before this encoding are read as well:
// a packed outcome never starts with '{'.
const (
	packedVersion = 1

	flagStatusMask   = 3
	flagSplit        = 4
	flagTextsOfFirst = 8
)

var packedStatus = []Status{"", Accepted, Rejected, Failed}

// packedLua defines packed_ref(list, v): v, an outcome packed with its own
// texts, or the same outcome marked textsOfFirst when the list's first
// outcome is packed with the same texts.
const packedLua = `
local function packed_ref(list, v)
  local first = redis.call('LINDEX', list, 0)
  if not first or string.byte(v, 1) ~= 1 or string.byte(first, 1) ~= 1 then return v end
  local vh, fh = string.byte(v, 3), string.byte(first, 3)
  if string.sub(v, vh + 1) ~= string.sub(first, fh + 1) then return v end
  return string.sub(v, 1, 1) .. string.char(string.byte(v, 2) + 8) .. string.sub(v, 3, vh)
end
`

func encodeOutcome(o Outcome) (string, error) {
	st := slices.Index(packedStatus, o.Status)
	if st < 0 || o.Lo < 0 || o.Hi < 0 || o.Attempts < 0 || o.CheckedAt < 0 {
		b, err := json.Marshal(o)
		return string(b), err
	}
	flags := byte(st)
	if o.Split {
		flags |= flagSplit
	}
	b := make([]byte, 3, 3+4*binary.MaxVarintLen64+2+len(o.Code)+len(o.Message))
	b[0], b[1] = packedVersion, flags
	b = binary.AppendUvarint(b, uint64(o.Lo))
	b = binary.AppendUvarint(b, uint64(o.Hi))
	b = binary.AppendUvarint(b, uint64(o.Attempts))
	b = binary.AppendUvarint(b, uint64(o.CheckedAt))
	b[2] = byte(len(b))
	b = appendText(b, o.Code)
	b = appendText(b, o.Message)
	return string(b), nil
}

func appendText(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeOutcomes packs a whole list as the record script would have built
// it, outcome by outcome.
func encodeOutcomes(outs []Outcome) ([]any, error) {
	vals := make([]any, len(outs))
	for i, o := range outs {
		v, err := encodeOutcome(o)
		if err != nil {
			return nil, err
		}
		if i > 0 && v[0] == packedVersion && outs[0].Code == o.Code && outs[0].Message == o.Message {
			if first, _ := vals[0].(string); first[0] == packedVersion {
				v = v[:1] + string(v[1]|flagTextsOfFirst) + v[2:v[2]]
			}
		}
		vals[i] = v
	}
	return vals, nil
}

// decodeOutcomes decodes a chunk's list of outcomes, in order.
func decodeOutcomes(raw []string) ([]Outcome, error) {
	out := make([]Outcome, 0, len(raw))
	for _, r := range raw {
		o, err := decodeOutcome(r, out)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// decodeOutcome decodes one outcome of a list whose earlier outcomes are
// before.
func decodeOutcome(s string, before []Outcome) (Outcome, error) {
	var o Outcome
	if len(s) == 0 || s[0] != packedVersion {
		if err := json.Unmarshal([]byte(s), &o); err != nil {
			return o, fmt.Errorf("decoding outcome %q: %w", s, err)
		}
		return o, nil
	}
	if len(s) < 3 || s[2] < 3 || int(s[2]) > len(s) || s[1]&^(flagStatusMask|flagSplit|flagTextsOfFirst) != 0 {
		return o, corruptOutcome(s)
	}
	flags := s[1]
	o.Status, o.Split = packedStatus[flags&flagStatusMask], flags&flagSplit != 0
	b := []byte(s[3:s[2]])
	var vals [4]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 || v > math.MaxInt64 {
			return o, corruptOutcome(s)
		}
		vals[i], b = v, b[n:]
	}
	if len(b) != 0 {
		return o, corruptOutcome(s)
	}
	o.Lo, o.Hi, o.Attempts, o.CheckedAt = int(vals[0]), int(vals[1]), int(vals[2]), int64(vals[3])
	if flags&flagTextsOfFirst != 0 {
		if len(before) == 0 || len(s) != int(s[2]) {
			return o, corruptOutcome(s)
		}
		o.Code, o.Message = before[0].Code, before[0].Message
		return o, nil
	}
	t := []byte(s[s[2]:])
	var texts [2]string
	for i := range texts {
		l, n := binary.Uvarint(t)
		if n <= 0 || l > uint64(len(t)-n) {
			return o, corruptOutcome(s)
		}
		texts[i], t = string(t[n:n+int(l)]), t[n+int(l):]
	}
	if len(t) != 0 {
		return o, corruptOutcome(s)
	}
	o.Code, o.Message = texts[0], texts[1]
	return o, nil
}

// corruptOutcome is the error of an outcome s that does not decode: made
// only then, not for each outcome decoded.
func corruptOutcome(s string) error { return fmt.Errorf("decoding outcome %q: corrupt", s) }

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
	by, all := SettledBy(n, outcomes)
	per := make([]Outcome, n)
	for i, k := range by {
		if k >= 0 {
			per[i] = outcomes[k]
		}
	}
	return per, all
}

// SettledBy is Settle without the copies: for each entry, the index in
// outcomes of the one that settled it, -1 for none.
func SettledBy(n int, outcomes []Outcome) ([]int32, bool) {
	by := make([]int32, n)
	for i := range by {
		by[i] = -1
	}
	count := 0
	for k, o := range outcomes {
		if !o.Final() {
			continue
		}
		for i := max(o.Lo, 0); i < min(o.Hi, n); i++ {
			if by[i] < 0 {
				by[i] = int32(k)
				count++
			}
		}
	}
	return by, count == n
}
