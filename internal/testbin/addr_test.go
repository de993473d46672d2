package testbin

import (
	"net"
	"strconv"
	"testing"
)

// FreeAddr gives a port below the ephemeral range that a listener can take.
func TestFreeAddr(t *testing.T) {
	addr := FreeAddr(t)
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if port, _ := strconv.Atoi(p); port < 10000 || port >= ephemeralLow() {
		t.Errorf("port %d: want 10000 <= port < %d", port, ephemeralLow())
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	ln.Close()
}
