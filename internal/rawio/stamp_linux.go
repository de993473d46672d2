//go:build linux && !386

package rawio

import (
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// StampListener returns ln, its connections read through recvmsg with
// SO_TIMESTAMPNS, so that each knows when what it read reached the host
// (see [Arrival]): a server that counts requests by their arrival then
// counts them right even when it was descheduled as they came. The option
// is set on the listening socket too, so that the first segment, queued
// before Accept, is stamped as well. Under the race detector, or when ln
// is not TCP or the option cannot be set, it returns ln.
func StampListener(ln net.Listener) net.Listener {
	tl, ok := ln.(*net.TCPListener)
	if raceEnabled || !ok {
		return ln
	}
	rc, err := tl.SyscallConn()
	if err != nil || setTimestamps(rc) != nil {
		return ln
	}
	return stampListener{tl}
}

type stampListener struct{ *net.TCPListener }

func (l stampListener) Accept() (net.Conn, error) {
	c, err := l.TCPListener.AcceptTCP()
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil || setTimestamps(rc) != nil { // inherited; set again in case
		return c, nil
	}
	return &StampedConn{Conn: Conn{Conn: c, rc: rc}}, nil
}

func setTimestamps(rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// StampedConn is a socket of a [StampListener]: it reads through recvmsg
// and keeps the kernel's receive time of the last segment read, and writes
// as [Conn] does.
type StampedConn struct {
	Conn
	arrival atomic.Int64 // Unix ns; 0 when the last read had no stamp

	// The buffers of recvmsg, here so that a read allocates none (as locals
	// they escape to the heap through the closure given to RawConn.Read:
	// three allocations a read). So Read is not safe for concurrent use,
	// against net.Conn's contract: net/http's server reads a connection
	// from one goroutine at a time.
	msg syscall.Msghdr
	iov syscall.Iovec
	oob [64]byte
}

// Arrival returns when the last segment read reached the host, by the
// kernel's clock (the wall clock), or the zero time when the kernel gave
// no stamp.
func (c *StampedConn) Arrival() time.Time {
	if ns := c.arrival.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

func (c *StampedConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.iov.Base, c.msg.Iov = &p[0], &c.iov
	c.iov.SetLen(len(p))
	c.msg.Iovlen = 1
	c.msg.Control = &c.oob[0]
	c.msg.SetControllen(len(c.oob))
	n, errno, err := readCall(c.rc, syscall.SYS_RECVMSG, unsafe.Pointer(&c.msg), 0)
	c.iov.Base = nil // keep no hold on the caller's buffer
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("recvmsg", errno))
	case n == 0:
		return 0, io.EOF
	}
	c.arrival.Store(stamp(c.oob[:c.msg.Controllen]))
	return n, nil
}

// The shutdowns and options of the TCP socket, which net/http's server
// looks for: without CloseWrite, a connection closed after an early answer
// (a 401 to a large body unread) sends no FIN first, and the client gets a
// reset 500 ms later instead of the answer's end.

func (c *StampedConn) tcp() *net.TCPConn { return c.Conn.Conn.(*net.TCPConn) }

// CloseWrite shuts down the writing side of the socket.
func (c *StampedConn) CloseWrite() error { return c.tcp().CloseWrite() }

// CloseRead shuts down the reading side of the socket.
func (c *StampedConn) CloseRead() error { return c.tcp().CloseRead() }

// SetLinger sets SO_LINGER; see [net.TCPConn.SetLinger].
func (c *StampedConn) SetLinger(sec int) error { return c.tcp().SetLinger(sec) }

// SetKeepAlive sets SO_KEEPALIVE.
func (c *StampedConn) SetKeepAlive(on bool) error { return c.tcp().SetKeepAlive(on) }

// SetNoDelay sets TCP_NODELAY.
func (c *StampedConn) SetNoDelay(on bool) error { return c.tcp().SetNoDelay(on) }

// stamp returns the SCM_TIMESTAMPNS time in the control messages oob, in
// Unix ns, or 0.
func stamp(oob []byte) int64 {
	h := syscall.CmsgLen(0)
	for len(oob) >= h {
		m := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(m.Len)
		if l < h || l > len(oob) {
			return 0
		}
		// A Timespec is two native words: on 32-bit targets the kernel's
		// SO_TIMESTAMPNS (the _OLD variant) gives a 32-bit one too, good
		// until 2038.
		if m.Level == syscall.SOL_SOCKET && m.Type == syscall.SCM_TIMESTAMPNS && l >= syscall.CmsgLen(int(unsafe.Sizeof(syscall.Timespec{}))) {
			ts := (*syscall.Timespec)(unsafe.Pointer(&oob[h]))
			return ts.Nano()
		}
		oob = oob[min(len(oob), syscall.CmsgSpace(l-h)):]
	}
	return 0
}
