//go:build !linux

package sleep

import (
	"context"
	"errors"
	"time"
)

// sysTimer: none outside Linux; Precisely waits as For does.
type sysTimer struct{}

func newSysTimer() (*sysTimer, error) { return nil, errors.New("no system timer") }

func (*sysTimer) wait(ctx context.Context, d time.Duration) error { return For(ctx, d) }
