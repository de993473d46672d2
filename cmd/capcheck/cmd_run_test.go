package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capcheck/capcheck/internal/filetest"
)

// TestRunRefusesSymlinksInOut: a symbolic link in --out in place of the
// lock, a job's journal or its spec file stops the run with exit 2 naming
// the link, and the file it points at is left as it was.
func TestRunRefusesSymlinksInOut(t *testing.T) {
	t.Parallel()
	for _, name := range []string{".run.lock", "nightly/journal.jsonl", "nightly/journal-job.json"} {
		// Not parallel: apps run at once race on urfave/cli's shared help flag.
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			victim := filetest.Temp(t, "victim", "not capcheck's\n")
			link := filepath.Join(out, name)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, link); err != nil {
				t.Fatal(err)
			}
			input := filetest.Temp(t, "in.csv", "phone\n+14155550100\n")
			var stdout, stderr bytes.Buffer
			app := newApp(&stdout, &stderr, commands())
			code := run(t.Context(), app, []string{"capcheck", "run", "--demo", "--job", "nightly", "--input", input, "--out", out})
			if code != exitUsage || !strings.Contains(stderr.String(), link) || !strings.Contains(stderr.String(), "symbolic link") {
				t.Errorf("run with %s a link: exit %d, stderr %q; want %d naming the link", name, code, stderr.String(), exitUsage)
			}
			if got, err := os.ReadFile(victim); err != nil || string(got) != "not capcheck's\n" {
				t.Errorf("the file the link points at: %q, %v", got, err)
			}
		})
	}
}
