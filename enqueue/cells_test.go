package enqueue

import (
	"os"
	"strings"
	"testing"
)

// rejects.csv is opened in spreadsheets: an input that would run as a
// formula is written as text, a phone number as it was.
func TestRunRejectsCellsAreText(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.config("-")
	cfg.JobID = "cells"
	cfg.Stdin = strings.NewReader("+919876543210\n=HYPERLINK(\"http://x\")\n@SUM(1)\n-2+3+cmd|' /C calc'!A0\n+91 98765 43210\n")
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(res.RejectsPath)
	if err != nil {
		t.Fatal(err)
	}
	want := "row,input,reason\n" +
		"2,\"'=HYPERLINK(\"\"http://x\"\")\",invalid\n" +
		"3,'@SUM(1),invalid\n" +
		"4,'-2+3+cmd|' /C calc'!A0,invalid\n" +
		"5,+91 98765 43210,duplicate of row 1\n"
	if string(data) != want {
		t.Errorf("rejects.csv:\n%s\nwant:\n%s", data, want)
	}
}
