package testbin

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreeAddr returns a loopback address nothing listened on a moment ago, for
// a process the test starts to listen on. Its port is below the kernel's
// range for the local ports of outgoing connections: a port from that range
// (as a listen on port 0 gives) may be taken by any connection a test's
// processes open before the process binds it.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	lo := ephemeralLow()
	for range 200 {
		port := 10000 + rand.IntN(lo-10000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			addr := ln.Addr().String()
			_ = ln.Close()
			return addr
		}
	}
	tb.Fatal("testbin: no free loopback port below the ephemeral range")
	return ""
}

// ephemeralLow is the first port of the kernel's range for outgoing
// connections (32768 where it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 12000 {
		return 32768
	}
	return lo
}
