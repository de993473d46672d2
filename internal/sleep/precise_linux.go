package sleep

import (
	"context"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/capcheck/capcheck/internal/rawio"
)

// sysTimer is a timerfd in the runtime's network poller: its expiry wakes
// the waiting goroutine through epoll, to the microsecond.
type sysTimer struct {
	f  *os.File
	fd int
	rc syscall.RawConn
}

func newSysTimer() (*sysTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// A non-blocking descriptor: os.NewFile puts it in the poller, where a
	// read deadline can end a wait; without that, none could be cancelled.
	f := os.NewFile(uintptr(fd), "timerfd")
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &sysTimer{f: f, fd: fd, rc: rc}, nil
}

func (t *sysTimer) wait(ctx context.Context, d time.Duration) error {
	begin := time.Now()
	// Arming clears the count of an expiry nobody read.
	if err := t.arm(d); err != nil {
		return For(ctx, d)
	}
	ended := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = t.f.SetReadDeadline(time.Unix(1, 0)) // ends the Read below
		close(ended)
	})
	err := t.read()
	if !stop() {
		<-ended
		t.reset()
		return ctx.Err()
	}
	if err != nil {
		// The descriptor failed: wait the rest the usual way.
		t.reset()
		return For(ctx, d-time.Since(begin))
	}
	return nil
}

// reset disarms the timer and clears the read deadline, for the next wait.
func (t *sysTimer) reset() {
	_ = t.arm(0)
	_ = t.f.SetReadDeadline(time.Time{})
}

// arm sets the timer to expire in d (0 disarms it). It and read make raw
// system calls, which do not wake the runtime's sysmon thread as the
// runtime's syscall entry does (see internal/rawio): the timer's expiry is
// then one wake-up of the process, not three or more.
func (t *sysTimer) arm(d time.Duration) error {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	_, _, e := syscall.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(t.fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// read waits in the runtime's poller until the timer expires, or the read
// deadline passes.
func (t *sysTimer) read() error {
	var buf [8]byte
	_, errno, err := rawio.Read(t.rc, buf[:])
	if err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
