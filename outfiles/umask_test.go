//go:build unix

package outfiles_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/outfiles"
)

// Output files hold phone numbers: their mode is the operator's umask's
// choice, not a fixed 0644. Not parallel: the umask is the process's.
func TestWriteAtomicHonoursUmask(t *testing.T) {
	for _, tt := range []struct {
		umask        int
		file, subdir os.FileMode
	}{
		{0o077, 0o600, 0o700},
		{0o027, 0o640, 0o750},
		{0o022, 0o644, 0o755},
		{0o002, 0o664, 0o775},
	} {
		old := syscall.Umask(tt.umask)
		dir := filepath.Join(t.TempDir(), "job")
		err := os.MkdirAll(dir, outfiles.DirMode)
		if err == nil {
			err = outfiles.WriteAtomic(filepath.Join(dir, "results.csv"), func(w io.Writer) error {
				_, err := io.WriteString(w, "row\n")
				return err
			})
		}
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		checkMode(t, tt.umask, filepath.Join(dir, "results.csv"), tt.file)
		checkMode(t, tt.umask, dir, tt.subdir)
	}

	// A job's files, written under umask 077: the owner's only.
	s := jobstore.New(redistest.Shared(t).Client(t))
	id := newJob(t, s, []jobstore.Entry{{Row: 1, Number: "+919876543210", Input: "9876543210"}},
		[]jobstore.Outcome{{Status: jobstore.Accepted}})
	out := t.TempDir()
	old := syscall.Umask(0o077)
	_, err := outfiles.Write(context.Background(), s, id, out)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	checkMode(t, 0o077, filepath.Join(out, id), 0o700)
	for _, name := range []string{outfiles.ResultsCSV, outfiles.RejectsCSV, outfiles.SummaryJSON} {
		checkMode(t, 0o077, filepath.Join(out, id, name), 0o600)
	}
}

func checkMode(t *testing.T, umask int, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("umask %03o: %s mode %03o, want %03o", umask, filepath.Base(path), got, want)
	}
}
