package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open, private := filepath.Join(dir, "open"), filepath.Join(dir, "private")
	for p, mode := range map[string]os.FileMode{open: 0o644, private: 0o600} {
		if err := os.WriteFile(p, []byte("k\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"key file readable by others", func(c *Config) { c.API.KeyFile = open }, "readable by other users (mode 0644)"},
		{"key file 0600", func(c *Config) { c.API.KeyFile = private }, ""},
		{"http to another host", func(c *Config) { c.API.URL = "http://api.example.com" }, "travel in clear"},
		{"http to loopback", func(c *Config) { c.API.URL = "http://127.0.0.1:8080" }, ""},
		{"http to localhost", func(c *Config) { c.API.URL = "http://localhost:8080" }, ""},
		{"metrics on every interface", func(c *Config) { c.Worker.MetricsAddr = ":9090" }, "every interface"},
		{"metrics on 0.0.0.0", func(c *Config) { c.Worker.MetricsAddr = "0.0.0.0:9090" }, "every interface"},
		{"metrics on [::]", func(c *Config) { c.Worker.MetricsAddr = "[::]:9090" }, "every interface"},
		{"metrics on loopback", func(c *Config) { c.Worker.MetricsAddr = "127.0.0.1:9090" }, ""},
	} {
		c := *Defaults()
		tc.mod(&c)
		got := strings.Join(c.Warnings(), "\n")
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%s: Warnings() = %q; want %q", tc.name, got, tc.want)
		}
	}
}
