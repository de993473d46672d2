// Package testbin builds the capcheck binary for end-to-end tests, and
// finds addresses for the processes they start to listen on.
//
// Build compiles ./cmd/capcheck once per test binary, with the go command of
// the running toolchain (go test puts its GOROOT/bin first in PATH), into a
// temporary directory. Packages that use it can remove that directory after
// their tests with
//
//	func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	once sync.Once
	dir  string // the temporary directory holding the binary
	path string
	err  error
)

// Build returns the path of a capcheck binary built from this module's
// ./cmd/capcheck, building it on the first call. It fails tb if the build
// fails.
func Build(tb testing.TB) string {
	tb.Helper()
	once.Do(func() { path, err = build() })
	if err != nil {
		tb.Fatalf("testbin: %v", err)
	}
	return path
}

// Main runs m's tests and then removes the binary Build made, if any. It
// returns the exit code for os.Exit.
func Main(m *testing.M) int {
	code := m.Run()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	return code
}

func build() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("finding the go command: %w", err)
	}
	dir, err = os.MkdirTemp("", "capcheck-testbin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "capcheck")
	cmd := exec.Command(goCmd, "build", "-o", bin, "./cmd/capcheck")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local") // this toolchain, never a download
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/capcheck in %s: %v\n%s", root, err, out)
	}
	return bin, nil
}

// moduleRoot is the nearest directory above the working directory (the test's
// package directory) holding go.mod.
func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		d = parent
	}
}
