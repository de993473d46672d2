//go:build unix

package capapi

import (
	"net"
	"syscall"
)

// alive reports whether the idle socket c is still open with nothing to read:
// an HTTP/1.1 server sends nothing on an idle connection but its close (or
// TLS's close alert before it).
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	ok = true
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = n <= 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true
	})
	return ok && err == nil
}
