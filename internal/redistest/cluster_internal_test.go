package redistest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartClusterFailureStopsNodes: when the cluster cannot be formed (here
// redis-cli fails), the set-up returns an error, does not panic, and stops
// the nodes it started.
func TestStartClusterFailureStopsNodes(t *testing.T) {
	server, err := findBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "redis-server")
	if err := os.Symlink(server, bin); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "redis-cli"), []byte("#!/bin/sh\necho cluster refused >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvServer, bin)

	c, err := startCluster()
	if err == nil {
		c.Stop()
		t.Fatal("startCluster succeeded with a redis-cli that fails")
	}
	if !strings.Contains(err.Error(), "cluster refused") {
		t.Errorf("error = %v, want redis-cli's message", err)
	}
	out, err := exec.Command("ps", "-eo", "args").Output()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, bin) {
			t.Errorf("a node of the failed cluster still runs: %s", line)
		}
	}
}
