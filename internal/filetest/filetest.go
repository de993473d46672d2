// Package filetest holds the file helpers that tests of several packages
// share. Each fails the test when the file system does.
package filetest

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Temp writes content to a file called name in a new temporary folder of
// tb, readable by its owner only (as a key file must be), and returns its
// path.
func Temp(tb testing.TB, name, content string) string {
	tb.Helper()
	return Write(tb, filepath.Join(tb.TempDir(), name), []byte(content))
}

// Write writes data to path, readable by its owner only, and returns path.
func Write(tb testing.TB, path string, data []byte) string {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// Read returns the content of path.
func Read(tb testing.TB, path string) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// ReadCSV returns the records of the CSV file path, its header first; an
// empty file, which has no header, fails the test.
func ReadCSV(tb testing.TB, path string) [][]string {
	tb.Helper()
	recs, err := csv.NewReader(bytes.NewReader(Read(tb, path))).ReadAll()
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	if len(recs) == 0 {
		tb.Fatalf("%s is empty: no header", path)
	}
	return recs
}

// Gzip returns what r reads, compressed with gzip.
func Gzip(tb testing.TB, r io.Reader) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.Copy(zw, r); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
