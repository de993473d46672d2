package embedded

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ErrSymlink is wrapped by the error for a file of the run that is a
// symbolic link: it is not followed, since a link planted in the output
// folder would have the run write through it to another file.
var ErrSymlink = errors.New("is a symbolic link, which is not followed")

// openNoFollow opens path, refusing a symbolic link (ErrSymlink).
func openNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
	if err == nil {
		return f, nil
	}
	// O_NOFOLLOW fails with ELOOP on Linux, EMLINK on some BSDs: ask.
	if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s %w: remove it", path, ErrSymlink)
	}
	return nil, err
}

// openExisting opens path for reading like openNoFollow; nil, nil when
// there is no such file.
func openExisting(path string) (*os.File, error) {
	f, err := openNoFollow(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return f, err
}

// LockedError is returned by Open when another process works in the
// output folder.
type LockedError struct {
	Out    string // the output folder
	Holder string // who holds it, as that process wrote it (pid, since when)
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("another process on an embedded Redis is using %s (%s)", e.Out, e.Holder)
}

// lockName is the lock file in the output folder.
const lockName = ".run.lock"

// lockDir keeps two runs on embedded Redis servers from working in one
// output folder at once: each would send every number again. The lock goes
// with the process, however it ends.
func lockDir(out string) (unlock func(), err error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("creating the output folder %s: %w", out, err)
	}
	path := filepath.Join(out, lockName)
	f, err := openNoFollow(path, os.O_CREATE|os.O_RDWR, 0o644)
	if errors.Is(err, ErrSymlink) {
		return nil, err // it names the path
	}
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(io.LimitReader(f, 256))
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		return nil, &LockedError{Out: out, Holder: string(holder)}
	}
	// Who holds it, for the message of a refused second run; best effort.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+" since "+time.Now().Format(time.RFC3339)), 0)
	}
	return func() { f.Close() }, nil
}
