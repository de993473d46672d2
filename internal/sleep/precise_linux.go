package sleep

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// sysTimer is a timerfd in the runtime's network poller: its expiry wakes
// the waiting goroutine through epoll, to the microsecond.
type sysTimer struct {
	f  *os.File
	fd int
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
	return &sysTimer{f: f, fd: fd}, nil
}

func (t *sysTimer) wait(ctx context.Context, d time.Duration) error {
	begin := time.Now()
	// Arming clears the count of an expiry nobody read.
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if err := unix.TimerfdSettime(t.fd, 0, &spec, nil); err != nil {
		return For(ctx, d)
	}
	ended := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = t.f.SetReadDeadline(time.Unix(1, 0)) // ends the Read below
		close(ended)
	})
	var buf [8]byte
	_, err := t.f.Read(buf[:])
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
	_ = unix.TimerfdSettime(t.fd, 0, &unix.ItimerSpec{}, nil)
	_ = t.f.SetReadDeadline(time.Time{})
}
