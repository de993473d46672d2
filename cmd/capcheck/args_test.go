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

func TestCheckArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"capcheck worker --sid --api-key K", "flag --sid has no value (the next argument is another flag); give it one, or write --sid= for an empty value; run 'capcheck worker --help' for the flags"},
		{"capcheck run --input x --job --api-key=K", "flag --job has no value"},
		{"capcheck memory stats --out --redis R", "run 'capcheck memory stats --help'"},
		{"capcheck status --log-level --api-key K", "flag --log-level has no value"},
		{"capcheck worker --sid S --api-key K", ""},
		{"capcheck worker --sid= --api-key K", ""},
		{"capcheck enqueue --input - --job j", ""},
		{"capcheck enqueue --column -1", ""},
		{"capcheck export JOB -- --out --redis", ""},
	} {
		err := checkArgs(commands(), strings.Fields(tc.in))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("checkArgs(%q) = %q; want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "K") || strings.Contains(got, "api-key") || strings.Contains(got, "redis") {
			t.Errorf("checkArgs(%q) = %q names what follows the flag", tc.in, got)
		}
	}
}

func TestSecretArgs(t *testing.T) {
	t.Parallel()
	got := secretArgs(strings.Fields("capcheck worker --api-key K1 x --api-key= K2 --redis=R1 y --redis R2 --out O --callback-token T"))
	want := map[string]bool{"K1": true, "K2": true, "R1": true, "R2": true, "T": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("secretArgs (-want +got):\n%s", diff)
	}
}
