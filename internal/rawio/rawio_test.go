//go:build linux && !386

package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// pair returns a client socket wrapped by Wrap and the server's end of it.
func pair(t *testing.T, network string) (*Conn, net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); srv.Close() })
	w, ok := wrap(c).(*Conn)
	if !ok {
		t.Fatalf("Wrap(%T) did not wrap it", c)
	}
	return w, srv
}

func TestReadWrite(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			c, srv := pair(t, network)
			// Larger than the socket's buffers: the write waits in the
			// poller for room, and goes on where it stopped.
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18)
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(io.LimitReader(srv, int64(len(big))))
				got <- b
			}()
			if n, err := c.Write(big); err != nil || n != len(big) {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
			}
			if b := <-got; !bytes.Equal(b, big) {
				t.Fatalf("the server read %d bytes, not what was written", len(b))
			}
			go srv.Write([]byte("pong"))
			buf := make([]byte, 16)
			n, err := io.ReadAtLeast(c, buf, 4)
			if err != nil || string(buf[:n]) != "pong" {
				t.Fatalf("Read = %q, %v; want pong", buf[:n], err)
			}
			if n, err := c.Read(nil); n != 0 || err != nil {
				t.Fatalf("Read(nil) = %d, %v", n, err)
			}
			srv.Close()
			if n, err := c.Read(buf); n != 0 || err != io.EOF {
				t.Fatalf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
			}
		})
	}
}

func TestDeadlineAndClose(t *testing.T) {
	c, _ := pair(t, "tcp")
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline = %v; want a timeout", err)
	}
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read of a closed connection = %v; want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write to a closed connection = %v; want net.ErrClosed", err)
	}
}

func TestWriteReset(t *testing.T) {
	c, srv := pair(t, "tcp")
	srv.(*net.TCPConn).SetLinger(0)
	srv.Close() // a reset
	time.Sleep(10 * time.Millisecond)
	var err error
	for range 10 { // the first write may still be accepted
		if _, err = c.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write to a reset connection = %v; want ECONNRESET or EPIPE", err)
	}
}

// The health check of a pooled connection (go-redis's) runs its own read
// only when there is something to see.
func TestSyscallConnPeeks(t *testing.T) {
	c, srv := pair(t, "tcp")
	sc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	check := func(fd uintptr) bool { calls++; return true }
	if err := sc.Read(check); err != nil || calls != 0 {
		t.Fatalf("idle socket: Read = %v, %d calls of f; want nil, 0", err, calls)
	}
	srv.Write([]byte("+PUSH"))
	time.Sleep(10 * time.Millisecond)
	if err := sc.Read(check); err != nil || calls != 1 {
		t.Fatalf("socket with data: Read = %v, %d calls of f; want nil, 1", err, calls)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	time.Sleep(10 * time.Millisecond)
	if err := sc.Read(check); err != nil || calls != 2 {
		t.Fatalf("socket closed by the peer: Read = %v, %d calls of f; want nil, 2", err, calls)
	}
}

func TestWrapLeavesOthers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a || wrap(a) != a {
		t.Fatal("Wrap wrapped a net.Pipe")
	}
}

// Wrap wraps a socket, but under the race detector, which does not see raw
// system calls.
func TestWrapRace(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, wrapped := Wrap(c).(*Conn); wrapped == raceEnabled {
		t.Errorf("Wrap wrapped a TCP socket: %v, with the race detector: %v", wrapped, raceEnabled)
	}
}
