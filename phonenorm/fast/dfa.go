package fast

import (
	"errors"
	"fmt"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

// maxStates bounds one automaton; a pattern set that needs more is left to
// the library (none of the shipped metadata comes close).
const maxStates = 1 << 16

// dfa is a deterministic automaton over the ten ASCII digits that runs
// several of libphonenumber's patterns at once. Bit i of a mask stands for
// pattern i of the set it was built from.
type dfa struct {
	next []int32 // state*10 + digit -> state; -1 is the dead state
	// full[s]: the patterns that match the whole input when the input ends
	// in state s (Go's ^(?:p)$ with MatchString).
	full []uint32
	// early[s]: the patterns that match a prefix ending in state s without
	// needing the end of the input; with full, this answers ^(?:p) with
	// MatchString (a match anywhere from the start).
	early []uint32
}

// matchFull returns the mask of the patterns that match all of d (digits).
func (a *dfa) matchFull(d []byte) uint32 {
	s := int32(0)
	for _, c := range d {
		s = a.next[int(s)*10+int(c-'0')]
		if s < 0 {
			return 0
		}
	}
	return a.full[s]
}

// matchPrefix returns the mask of the patterns that match some prefix of d,
// the empty one included.
func (a *dfa) matchPrefix(d []byte) uint32 {
	s := int32(0)
	var m uint32
	for _, c := range d {
		m |= a.early[s]
		s = a.next[int(s)*10+int(c-'0')]
		if s < 0 {
			return m
		}
	}
	return m | a.full[s]
}

// nfaState is a thread of one pattern's program: which pattern, which
// instruction.
type nfaState struct {
	pat int32
	pc  uint32
}

type dfaBuilder struct {
	progs []*syntax.Prog
	index map[string]int32
	sets  [][]nfaState
	a     dfa
}

// compileDFA builds one automaton for patterns (libphonenumber's dialect:
// Go regexp syntax, as the library compiles it). Patterns that could match
// something other than a string of ASCII digits are fine: only digit input
// is ever run. Word boundaries and the like are refused.
func compileDFA(patterns ...string) (*dfa, error) {
	if len(patterns) > 32 {
		return nil, errors.New("more than 32 patterns in one automaton")
	}
	b := &dfaBuilder{index: map[string]int32{}}
	for _, p := range patterns {
		re, err := syntax.Parse(p, syntax.Perl) // as regexp.Compile
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", p, err)
		}
		prog, err := syntax.Compile(re.Simplify())
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", p, err)
		}
		for _, in := range prog.Inst {
			if in.Op == syntax.InstEmptyWidth &&
				syntax.EmptyOp(in.Arg)&^(syntax.EmptyBeginText|syntax.EmptyEndText) != 0 {
				return nil, fmt.Errorf("pattern %q: unsupported assertion", p)
			}
		}
		b.progs = append(b.progs, prog)
	}
	start := make([]nfaState, 0, len(b.progs))
	for i, prog := range b.progs {
		start = b.closure(start, nfaState{int32(i), uint32(prog.Start)}, true, false)
	}
	if _, err := b.add(start, true); err != nil {
		return nil, err
	}
	for s := 0; s < len(b.sets); s++ {
		for d := range 10 {
			var next []nfaState
			for _, t := range b.sets[s] {
				in := &b.progs[t.pat].Inst[t.pc]
				if isRune(in.Op) && in.MatchRune(rune('0'+d)) {
					next = b.closure(next, nfaState{t.pat, in.Out}, false, false)
				}
			}
			id := int32(-1)
			if len(next) > 0 {
				var err error
				if id, err = b.add(next, false); err != nil {
					return nil, err
				}
			}
			b.a.next[s*10+d] = id
		}
	}
	return &b.a, nil
}

func isRune(op syntax.InstOp) bool {
	switch op {
	case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		return true
	}
	return false
}

// add registers the state set, computing its masks; begin says whether it
// is the start state (position 0).
func (b *dfaBuilder) add(set []nfaState, begin bool) (int32, error) {
	slices.SortFunc(set, func(x, y nfaState) int {
		if x.pat != y.pat {
			return int(x.pat - y.pat)
		}
		return int(x.pc) - int(y.pc)
	})
	set = slices.Compact(set)
	var key strings.Builder
	if begin {
		key.WriteByte('^') // the start state resolves assertions differently
	}
	for _, t := range set {
		key.WriteString(strconv.Itoa(int(t.pat)))
		key.WriteByte(':')
		key.WriteString(strconv.FormatUint(uint64(t.pc), 10))
		key.WriteByte(',')
	}
	if id, ok := b.index[key.String()]; ok {
		return id, nil
	}
	if len(b.sets) >= maxStates {
		return 0, errors.New("automaton too large")
	}
	id := int32(len(b.sets))
	b.index[key.String()] = id
	b.sets = append(b.sets, set)
	var early, full uint32
	var atEnd []nfaState
	for _, t := range set {
		in := &b.progs[t.pat].Inst[t.pc]
		switch in.Op {
		case syntax.InstMatch:
			early |= 1 << t.pat
		case syntax.InstEmptyWidth:
			// Held back until the input is known to end here.
			atEnd = b.closure(atEnd, t, begin, true)
		}
	}
	full = early
	for _, t := range atEnd {
		if b.progs[t.pat].Inst[t.pc].Op == syntax.InstMatch {
			full |= 1 << t.pat
		}
	}
	b.a.early = append(b.a.early, early)
	b.a.full = append(b.a.full, full)
	b.a.next = append(b.a.next, make([]int32, 10)...)
	return id, nil
}

// closure adds t and every instruction reachable from it without reading a
// digit. An assertion that does not hold at this position (begin: at the
// start of the input; end: at its end) stays in the set as is, so the end
// of the input can be tried later.
func (b *dfaBuilder) closure(set []nfaState, t nfaState, begin, end bool) []nfaState {
	prog := b.progs[t.pat]
	stack := []uint32{t.pc}
	seen := map[uint32]bool{}
	for len(stack) > 0 {
		pc := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pc] {
			continue
		}
		seen[pc] = true
		in := &prog.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			stack = append(stack, in.Arg, in.Out)
		case syntax.InstCapture, syntax.InstNop:
			stack = append(stack, in.Out)
		case syntax.InstFail:
		case syntax.InstEmptyWidth:
			op := syntax.EmptyOp(in.Arg)
			if (op&syntax.EmptyBeginText == 0 || begin) && (op&syntax.EmptyEndText == 0 || end) {
				stack = append(stack, in.Out)
			} else if op&syntax.EmptyEndText != 0 && (op&syntax.EmptyBeginText == 0 || begin) {
				set = append(set, nfaState{t.pat, pc})
			}
		default: // runes, match
			set = append(set, nfaState{t.pat, pc})
		}
	}
	return set
}
