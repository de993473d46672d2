package filetest

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFiles(t *testing.T) {
	t.Parallel()
	path := Temp(t, "list.csv", "phone,name\n+911,\"a, b\"\n")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("Temp's file: %v, %v; want mode 0600", fi, err)
	}
	want := [][]string{{"phone", "name"}, {"+911", "a, b"}}
	if diff := cmp.Diff(want, ReadCSV(t, path)); diff != "" {
		t.Errorf("ReadCSV (-want +got):\n%s", diff)
	}
	zr, err := gzip.NewReader(bytes.NewReader(Gzip(t, strings.NewReader("hello"))))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || string(got) != "hello" {
		t.Errorf("Gzip, read back: %q, %v; want \"hello\"", got, err)
	}
}
