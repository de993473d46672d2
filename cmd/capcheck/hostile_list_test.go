package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/internal/filetest"
	"github.com/capcheck/capcheck/internal/testbin"
	"github.com/capcheck/capcheck/listreader"
)

// memLimitKB is the data segment limit (ulimit -d: heap and thread stacks,
// not the Go runtime's address space reservations) the binary runs under in
// TestHostileListMemory. A run of a small list stays far below it; the list
// bombs, before the limit on fields, went past 2 GB.
const memLimitKB = 256 << 10

// gzipBomb writes a gzip file of head, n copies of fill, then tail: 30
// million commas compress to about 37 KB. The fastest level takes a fifth of
// the default's time under the race detector (1.3 s against 6 s).
func gzipBomb(t *testing.T, name, head string, fill byte, n int, tail string) string {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte{fill}, 1<<20)
	_, err = zw.Write([]byte(head))
	for ; err == nil && n > 0; n -= len(block) {
		_, err = zw.Write(block[:min(n, len(block))])
	}
	if err == nil {
		_, err = zw.Write([]byte(tail))
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runLimited runs the built binary's `run --demo` on input under
// memLimitKB, and returns its exit code and stderr.
func runLimited(t *testing.T, input, out string) (int, string) {
	t.Helper()
	bin := testbin.Build(t) // before the timeout: a build under load is slow
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `ulimit -d "$1" && shift && exec "$@"`, "sh",
		strconv.Itoa(memLimitKB), bin, "run", "--demo", "--input", input, "--out", out)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("running capcheck run --demo: %v\n%s", err, stderr.String())
	return 0, ""
}

// TestHostileListMemory runs `capcheck run --demo` under a memory limit on
// a header of 30 million fields (exit 2 naming the limit) and on a list with
// one record of 30 million fields (the record is rejected as malformed, the
// rows around it go on).
func TestHostileListMemory(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const commas = 30_000_000
	t.Run("header", func(t *testing.T) {
		t.Parallel()
		input := gzipBomb(t, "header.csv.gz", "phone", ',', commas, "\n+919876543210\n")
		code, stderr := runLimited(t, input, t.TempDir())
		if code != exitUsage || !strings.Contains(stderr, "more than 1024 fields") || strings.Contains(stderr, "fatal error") {
			t.Errorf("exit %d; want %d, a message naming the limit of %d fields; stderr:\n%.2000s", code, exitUsage, listreader.MaxFields, stderr)
		}
	})
	t.Run("record", func(t *testing.T) {
		t.Parallel()
		input := gzipBomb(t, "row.csv.gz", "phone,name\n+919876543210,a\n+919876543211", ',', commas, "\n+919876543212,c\n")
		out := t.TempDir()
		code, stderr := runLimited(t, input, out)
		if code != exitOK && code != exitFailedNumbers {
			t.Fatalf("exit %d; stderr:\n%.2000s", code, stderr)
		}
		rejects := readCSV(t, out, "rejects.csv")
		// A cell of '+' and more than a phone number's characters is
		// written as text for spreadsheets: with a leading apostrophe.
		if len(rejects) != 2 || rejects[1][0] != "2" || rejects[1][2] != listreader.ReasonMalformed ||
			!strings.HasPrefix(rejects[1][1], "'+919876543211,,,") || len(rejects[1][1]) > 1+256 {
			t.Errorf("rejects.csv: %.300q; want row 2 malformed, its first 256 bytes", rejects)
		}
		if results := readCSV(t, out, "results.csv"); len(results) != 3 || results[1][0] != "1" || results[2][0] != "3" {
			t.Errorf("results.csv: %q; want rows 1 and 3", results)
		}
	})
}

// readCSV reads file of the only job folder in out.
func readCSV(t *testing.T, out, file string) [][]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(out, "*", file))
	if err != nil || len(paths) != 1 {
		t.Fatalf("%s in %s: %v, %v", file, out, paths, err)
	}
	return filetest.ReadCSV(t, paths[0])
}
