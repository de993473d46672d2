package fast

import "bytes"

// Each function here is the library function of the same role, for a
// string of ASCII digits; the names of the library's are in the comments.

// extractCountryCode is extractCountryCode: the first one to three digits
// that form a known calling code, and the rest. cc is 0 when there is none.
func (p *Parser) extractCountryCode(full []byte) (cc int, national []byte, res Result) {
	if len(full) == 0 || full[0] == '0' {
		return 0, nil, Valid
	}
	for i := 1; i <= 3 && i <= len(full); i++ {
		cc = cc*10 + int(full[i-1]-'0')
		if p.reg.ccs[cc].known {
			return cc, full[i:], Valid
		}
	}
	return 0, nil, Valid
}

// withoutPlus is maybeExtractCountryCode for a number without a leading
// '+': an international prefix of the home region, or the home region's
// calling code when the rest reads better as a national number. cc is 0
// when the number has no calling code.
// The result may be appended to buf.
func (p *Parser) withoutPlus(buf, d []byte, home *compiled) (cc int, national []byte, res Result) {
	if end, ok := iddPrefix(d, home.idd); ok {
		rest := d[end:]
		if len(rest) <= minNSN {
			return 0, nil, Invalid // too short after the IDD
		}
		cc, national, _ = p.extractCountryCode(rest)
		if cc == 0 {
			return 0, nil, Invalid // unknown calling code
		}
		return cc, national, Valid
	}
	if !bytes.HasPrefix(d, []byte(home.ccDigits)) {
		return 0, nil, Valid
	}
	pot, res := stripNationalPrefix(buf, d[len(home.ccDigits):], home)
	if res != Valid {
		return 0, nil, res
	}
	fullValid := home.valid.matchFull(d)&(1<<patGeneral) != 0
	nationalValid := home.valid.matchFull(pot)&(1<<patGeneral) != 0
	if (!fullValid && nationalValid) || testNumberLength(d, home) == lenTooLong {
		return home.cc, pot, Valid
	}
	return 0, nil, Valid
}

// iddPrefix is parsePrefixAsIdd: the end of the international prefix at the
// start of d, unless a 0 follows it (no calling code starts with 0).
func iddPrefix(d []byte, r *prefixRule) (end int, ok bool) {
	if r.gate.matchPrefix(d) == 0 {
		return 0, false // no match at 0, so none leftmost at 0
	}
	if r.literal {
		end = len(r.lit)
	} else {
		// A copy: d must not escape to the heap on the common paths.
		ind := r.re.FindStringIndex(string(d))
		if ind == nil || ind[0] != 0 {
			return 0, false
		}
		end = ind[1]
	}
	if end < len(d) && d[end] == '0' {
		return 0, false
	}
	return end, true
}

// stripNationalPrefix is maybeStripNationalPrefixAndCarrierCode: number
// without its national prefix (and carrier code), or number itself; the
// result may be appended to buf. res is Unsure when the library's steps
// would leave digits-only ground.
func stripNationalPrefix(buf, number []byte, m *compiled) (out []byte, res Result) {
	r := m.npp
	if len(number) == 0 || r == nil || r.gate.matchPrefix(number) == 0 {
		return number, Valid
	}
	viable := m.valid.matchFull(number)&(1<<patGeneral) != 0
	if r.literal && m.transform == "" {
		rest := number[len(r.lit):]
		if viable && m.valid.matchFull(rest)&(1<<patGeneral) == 0 {
			return number, Valid
		}
		return rest, Valid
	}
	groups := r.re.FindStringSubmatchIndex(string(number))
	if groups == nil {
		return nil, Unsure // the automaton and the regexp disagree
	}
	last := len(groups)/2 - 1
	if m.transform == "" || groups[last*2] < 0 {
		rest := number[groups[1]:]
		if viable && m.valid.matchFull(rest)&(1<<patGeneral) == 0 {
			return number, Valid
		}
		return rest, Valid
	}
	t := r.re.ReplaceAllString(string(number), m.transform)
	if len(t) > maxDigits || !allDigits(t) {
		// Not seen in the metadata; the library knows what it does.
		return nil, Unsure
	}
	if viable && m.valid.matchFull([]byte(t))&(1<<patGeneral) == 0 {
		return number, Valid
	}
	return append(buf, t...), Valid
}

func allDigits(b string) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// testNumberLength is testNumberLength for the type UNKNOWN (the general
// description).
func testNumberLength(number []byte, m *compiled) int {
	if m.possible[0] == -1 {
		return lenInvalid
	}
	n := int32(len(number))
	for _, l := range m.localOnly {
		if l == n {
			return lenLocalOnly
		}
	}
	switch {
	case m.possible[0] == n:
		return lenPossible
	case m.possible[0] > n:
		return lenTooShort
	case m.possible[len(m.possible)-1] < n:
		return lenTooLong
	}
	for _, l := range m.possible[1:] {
		if l == n {
			return lenPossible
		}
	}
	return lenInvalid
}

// isValid is IsValidNumber for the calling code and national significant
// number: the region the number belongs to, then its number types.
func (p *Parser) isValid(cc int, nsn []byte) Result {
	info := &p.reg.ccs[cc]
	switch len(info.regions) {
	case 0:
		return Invalid
	case 1:
		// One region, or a non-geographical code ("001").
		m := info.main.get()
		if m == nil {
			if info.main == nil {
				return Invalid
			}
			return Unsure
		}
		return verdict((info.ids[0] == "001" || m.cc == cc) && m.typeOf(nsn))
	}
	for _, rm := range info.regions {
		if rm == nil {
			return Unsure // the library would fail on it
		}
		m := rm.get()
		if m == nil {
			return Unsure
		}
		if m.leading != nil {
			if m.leading.matchPrefix(nsn) != 0 {
				return verdict(m.cc == cc && m.typeOf(nsn))
			}
		} else if m.typeOf(nsn) {
			return verdict(m.cc == cc)
		}
	}
	return Invalid
}

// typeOf is getNumberTypeHelper(nsn) != UNKNOWN.
func (m *compiled) typeOf(nsn []byte) bool {
	mask := m.valid.matchFull(nsn)
	bit := uint32(1) << len(nsn)
	ok := func(i int) bool { return mask&(1<<i) != 0 && m.lens[i]&bit != 0 }
	if !ok(patGeneral) {
		return false
	}
	for i := patPremium; i <= patFixed; i++ {
		if ok(i) {
			return true
		}
	}
	return !m.same && ok(patMobile)
}

func verdict(valid bool) Result {
	if valid {
		return Valid
	}
	return Invalid
}
