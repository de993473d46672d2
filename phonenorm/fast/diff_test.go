package fast

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// defaultDiffN is the short version in the test suite; make
// test-normalize-diff runs 10,000,000.
var defaultDiffN = 100_000

var diffN = flag.Int("diff.n", 0, "inputs of TestDifferential (0: 100,000, or 20,000 under the race detector)")

// library is what the fast path must agree with: Parse, IsValidNumber and
// the E.164 form.
func library(s, region string) (string, Result) {
	var num phonenumbers.PhoneNumber
	if err := phonenumbers.ParseToNumber(s, region, &num); err != nil || !phonenumbers.IsValidNumber(&num) {
		return "", Invalid
	}
	return phonenumbers.Format(&num, phonenumbers.E164), Valid
}

// check compares the fast path with the library on one input; it returns
// whether the fast path decided it.
func check(t testing.TB, p *Parser, s, region string) bool {
	got, res := p.AppendE164(nil, s)
	if res == Unsure {
		return false
	}
	want, wantRes := library(s, region)
	if res != wantRes || string(got) != want {
		t.Errorf("AppendE164(%q) with region %q = %q, %v; the library says %q, %v", s, region, got, res, want, wantRes)
	}
	return true
}

// TestDifferential feeds generated inputs through the fast path and the
// library; they must agree on validity and the E.164 form of every input
// the fast path decides. -diff.n sets the count.
func TestDifferential(t *testing.T) {
	t.Parallel()
	n := *diffN
	if n == 0 {
		n = defaultDiffN
	}
	workers := runtime.GOMAXPROCS(0)
	var (
		decided, valid, done atomic.Int64
		wg                   sync.WaitGroup
		parsers              sync.Map
	)
	parser := func(region string) *Parser {
		if p, ok := parsers.Load(region); ok {
			return p.(*Parser)
		}
		p, _ := parsers.LoadOrStore(region, New(region))
		return p.(*Parser)
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newGen(uint64(w) + 1)
			for i := w; i < n && !t.Failed(); i += workers {
				s, region := g.next()
				if check(t, parser(region), s, region) {
					decided.Add(1)
					if _, res := parser(region).AppendE164(nil, s); res == Valid {
						valid.Add(1)
					}
				}
				if d := done.Add(1); n > 1_000_000 && d%1_000_000 == 0 {
					fmt.Printf("%d of %d compared, %d decided by the fast path\n", d, n, decided.Load())
				}
			}
		}()
	}
	wg.Wait()
	msg := fmt.Sprintf("%d inputs compared with the library: %d decided by the fast path (%.1f%%), %d of them valid",
		done.Load(), decided.Load(), 100*float64(decided.Load())/float64(max(done.Load(), 1)), valid.Load())
	t.Log(msg)
	if testing.Verbose() || n > 1_000_000 {
		fmt.Println(msg)
	}
}

// FuzzAppendE164 checks the fast path against the library on any input:
//
//	go test -fuzz FuzzAppendE164 -fuzztime 60s ./phonenorm/fast/
func FuzzAppendE164(f *testing.F) {
	g := newGen(99)
	for range 200 {
		s, region := g.next()
		f.Add(s, region)
	}
	f.Add("+91 98765 43210", "IN")
	f.Add("0044 (0) 20 7946 0000", "GB")
	f.Add("+0091 98765 43210", "IN")
	f.Fuzz(func(t *testing.T, s, region string) {
		if len(s) > 64 {
			return
		}
		check(t, New(region), s, region)
	})
}
