//go:build !linux || 386

package rawio

import "net"

// Wrap returns c: raw system calls are used on Linux but for 386, whose
// syscall package has no SYS_RECVFROM.
func Wrap(c net.Conn) net.Conn { return c }

// StampListener returns ln: see the Linux version.
func StampListener(ln net.Listener) net.Listener { return ln }
