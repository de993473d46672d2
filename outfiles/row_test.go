package outfiles

import (
	"bytes"
	"encoding/csv"
	"testing"
)

// appendRecord writes what encoding/csv writes.
func FuzzAppendRecord(f *testing.F) {
	for _, s := range []string{"", "plain", "a,b", `say "hi"`, "line\nbreak", "cr\rhere", " lead", "\tlead", `\.`, "\u00a0nbsp", "'=x", "é,ü"} {
		f.Add(s, "+919800000001")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		var want bytes.Buffer
		cw := csv.NewWriter(&want)
		if err := cw.Write([]string{a, b, "MSG402"}); err != nil {
			t.Skip() // csv refuses it (invalid comma); nothing to compare
		}
		cw.Flush()
		if got := appendRecord(nil, []string{a, b, "MSG402"}); string(got) != want.String() {
			t.Errorf("appendRecord(%q, %q) = %q, want %q", a, b, got, want.String())
		}
	})
}
