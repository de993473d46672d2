package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInterspersed(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"capcheck wait JOB --timeout 1h", "capcheck wait --timeout 1h JOB"},
		{"capcheck wait --timeout=1h JOB --out d", "capcheck wait --timeout=1h --out d JOB"},
		{"capcheck status JOB --json --redis r", "capcheck status --json --redis r JOB"},
		{"capcheck enqueue --input - --job j", "capcheck enqueue --input - --job j"},
		{"capcheck export JOB -- --format", "capcheck export JOB -- --format"},
		{"capcheck nosuch a --b c", "capcheck nosuch a --b c"},
		{"capcheck --help", "capcheck --help"},
		{"capcheck memory forget +9198 --all --redis r", "capcheck memory forget --all --redis r +9198"},
	} {
		got := strings.Join(interspersed(commands(), strings.Fields(tc.in)), " ")
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("interspersed(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}
