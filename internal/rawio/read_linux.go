package rawio

import (
	"syscall"
	"unsafe"
)

// Read reads into p (not empty) from rc's non-blocking descriptor with raw
// read system calls, and waits in the runtime's poller while there is
// nothing to read. err is the poller's (a deadline passed, the descriptor
// closed), errno the read's.
func Read(rc syscall.RawConn, p []byte) (n int, errno syscall.Errno, err error) {
	return readCall(rc, syscall.SYS_READ, unsafe.Pointer(&p[0]), uintptr(len(p)))
}

// readCall is Read's loop for a system call of the form trap(fd, arg, arg3)
// that reads (read, recvmsg): it retries on EINTR and waits in the poller on
// EAGAIN.
func readCall(rc syscall.RawConn, trap uintptr, arg unsafe.Pointer, arg3 uintptr) (n int, errno syscall.Errno, err error) {
	err = rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(trap, fd, uintptr(arg), arg3)
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			n, errno = int(r), e
			return true
		}
	})
	return n, errno, err
}
