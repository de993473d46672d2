//go:build linux && !386

package rawio

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestStampListener checks that a read's stamp is when the data reached the
// host, not when it was read, on each of a connection's reads.
func TestStampListener(t *testing.T) {
	if raceEnabled {
		t.Skip("no stamps under the race detector")
	}
	c, srv := stampedPair(t)
	if _, ok := srv.(*StampedConn); !ok {
		t.Fatalf("Accept returned a %T, want a *StampedConn", srv)
	}
	if got := Arrival(srv); !got.IsZero() {
		t.Errorf("Arrival before any read = %v, want the zero time", got)
	}
	// The kernel turns its stamps on a moment after a socket first asks.
	for i := 0; Arrival(srv).IsZero(); i++ {
		if i == 500 {
			t.Fatal("no stamp after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
		if _, err := c.Write([]byte{0}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	const hold = 200 * time.Millisecond
	for i, msg := range []string{"first", "second"} {
		sent := time.Now()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(hold) // the server is slow to read
		read := time.Now()
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(srv, buf); err != nil || string(buf) != msg {
			t.Fatalf("read %q, %v; want %q", buf, err, msg)
		}
		// The kernel's clock is the wall clock: the stamp is after the
		// write began and before the read did.
		if got := Arrival(srv); got.Before(sent.Round(0)) || !got.Before(read.Round(0)) {
			t.Errorf("read %d: Arrival = %v, want between the write at %v and the read at %v", i, got, sent, read)
		}
	}
	c.Close()
	if n, err := srv.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
	}
	if got := Arrival(c); !got.IsZero() {
		t.Errorf("Arrival of a plain connection = %v, want the zero time", got)
	}
}

// TestStampedConnTCP checks that a StampedConn keeps what net/http looks
// for on a TCP socket (CloseWrite sends the FIN after an early answer), and
// keeps no hold on a reader's buffer after a read.
func TestStampedConnTCP(t *testing.T) {
	if raceEnabled {
		t.Skip("no stamps under the race detector")
	}
	c, a := stampedPair(t)
	srv, ok := a.(interface {
		net.Conn
		CloseWrite() error
		CloseRead() error
		SetLinger(int) error
		SetKeepAlive(bool) error
		SetNoDelay(bool) error
	})
	if !ok {
		t.Fatalf("a %T lacks the methods of a *net.TCPConn", a)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if sc := a.(*StampedConn); sc.iov.Base != nil {
		t.Error("after a read the connection still points into the reader's buffer")
	}
	if err := srv.SetNoDelay(true); err != nil {
		t.Error(err)
	}
	if err := srv.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("client's read after CloseWrite = %d, %v; want 0, EOF", n, err)
	}
}

// stampedPair returns a loopback connection's client end and its server
// end, accepted from a StampListener; both are closed when the test ends.
func stampedPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := StampListener(ln)
	t.Cleanup(func() { sl.Close() })
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}
