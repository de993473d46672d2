//go:build linux && !386

// Package rawio reads and writes sockets without the Go runtime's system
// call bookkeeping. A worker's process is idle between the events of an API
// call (the slot's timer, Redis's replies, the API's answer), and each
// read or write after such a pause, made through the runtime's syscall
// entry, wakes sysmon from its deep sleep and restarts its 20 µs polls
// until the process idles again: most of the worker's context switches and
// a sixth of its CPU (docs/benchmarks.md). The descriptors are
// non-blocking, so a raw read or write returns at once; when it would block
// the goroutine waits in the runtime's poller as usual, deadlines included.
package rawio

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Wrap returns c reading and writing through raw system calls when it is a
// TCP or Unix-domain socket, else c itself. Use it under TLS, not over it.
// With the race detector it returns c: raw calls hide from the detector the
// ordering a socket's write and its read give (false reports) and the
// kernel's access to the buffers (missed races).
func Wrap(c net.Conn) net.Conn {
	if raceEnabled {
		return c
	}
	return wrap(c)
}

func wrap(c net.Conn) net.Conn {
	sc, ok := c.(interface {
		net.Conn
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return c
	}
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &Conn{Conn: c, rc: rc}
}

// Conn is a socket read and written through raw system calls.
type Conn struct {
	net.Conn
	rc syscall.RawConn
}

// Unwrap returns the socket.
func (c *Conn) Unwrap() net.Conn { return c.Conn }

func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, errno, err := Read(c.rc, p)
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) Write(p []byte) (int, error) {
	n, errno := 0, syscall.Errno(0)
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// SyscallConn returns the socket's raw connection for go-redis's health
// check of a pooled connection, whose read peeks with a runtime system
// call: it is called only when a raw peek finds something to look at (data,
// the peer's close, an error), and an idle socket passes without it.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return peekFirst{c.rc}, nil }

type peekFirst struct{ syscall.RawConn }

func (p peekFirst) Read(f func(uintptr) bool) error {
	idle := false
	err := p.RawConn.Control(func(fd uintptr) {
		var b [1]byte
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		idle = e == syscall.EAGAIN
	})
	if err != nil || idle {
		return err
	}
	return p.RawConn.Read(f)
}

// opError wraps err as net's own reads and writes do.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
