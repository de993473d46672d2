package configs

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"

	"github.com/capcheck/capcheck/internal/redact"
)

// Warnings lists what in c is allowed but risky, for the command to log once
// at start: an API key file other users may read, an API key sent in clear
// to another machine, metrics served on every interface.
func (c Config) Warnings() []string {
	var w []string
	if c.API.KeyFile != "" {
		if fi, err := os.Stat(c.API.KeyFile); err == nil && fi.Mode().Perm()&0o044 != 0 {
			w = append(w, fmt.Sprintf("--api-key-file %s is readable by other users (mode %#o): chmod 600 it",
				c.API.KeyFile, fi.Mode().Perm()))
		}
	}
	if u, err := url.Parse(c.API.URL); err == nil && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		w = append(w, fmt.Sprintf("--api-url %s is http:// to another machine: the API key and the numbers travel "+
			"in clear; use https://", redact.URL(c.API.URL)))
	}
	if a := c.Worker.MetricsAddr; a != "" {
		if host, _, err := net.SplitHostPort(a); err == nil && (host == "" || isUnspecified(host)) {
			w = append(w, fmt.Sprintf("--metrics-addr %s listens on every interface: /metrics and /healthz are open "+
				"to the network; give 127.0.0.1:PORT or a private address unless that is meant", a))
		}
	}
	return w
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func isUnspecified(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsUnspecified()
}
