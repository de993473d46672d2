package testbin_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/capcheck/capcheck/internal/testbin"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

func TestBuild(t *testing.T) {
	bin := testbin.Build(t)
	if again := testbin.Build(t); again != bin {
		t.Errorf("second Build = %q; want the same binary %q", again, bin)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("capcheck --help: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "capcheck") {
		t.Errorf("capcheck --help printed:\n%s", out)
	}
}
