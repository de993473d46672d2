package report_test

import (
	"maps"
	"testing"

	"github.com/capcheck/capcheck/report"
)

// RunCounts counts as a map would, runs or not.
func TestRunCounts(t *testing.T) {
	c := report.RunCounts{M: map[string]int64{"failed": 0}}
	want := map[string]int64{"failed": 0}
	for _, s := range []string{"accepted", "accepted", "rejected", "accepted", "cached", "cached", "cached", "rejected"} {
		c.Add(s)
		want[s]++
	}
	if got := c.Map(); !maps.Equal(got, want) {
		t.Fatalf("Map() = %v, want %v", got, want)
	}
	c.Add("rejected")
	want["rejected"]++
	if got := c.Map(); !maps.Equal(got, want) {
		t.Fatalf("Map() after another Add = %v, want %v", got, want)
	}
}
