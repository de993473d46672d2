package outfiles

import (
	"errors"
	"io"
	"sync/atomic"
	"testing"
)

// A file is synced in the background as it is written, one sync at a
// time, and a sync's failure is returned: Linux reports it once.
func TestSyncingWriter(t *testing.T) {
	var syncs atomic.Int32
	fail := errors.New("EIO")
	sw := &syncingWriter{w: io.Discard, sync: func() error {
		if syncs.Add(1) == 2 {
			return fail
		}
		return nil
	}}
	buf := make([]byte, syncEvery/4)
	for range 3 {
		if _, err := sw.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.wait(); err != nil || syncs.Load() != 0 {
		t.Fatalf("after %d bytes: %d syncs, err %v; want none", 3*len(buf), syncs.Load(), err)
	}
	sw.Write(buf)
	if err := sw.wait(); err != nil || syncs.Load() != 1 {
		t.Fatalf("after %d bytes: %d syncs, err %v; want 1, nil", syncEvery, syncs.Load(), err)
	}
	for range 4 {
		sw.Write(buf)
	}
	if err := sw.wait(); !errors.Is(err, fail) {
		t.Fatalf("wait after a failed sync = %v, want %v", err, fail)
	}
	if _, err := sw.Write(buf); !errors.Is(err, fail) {
		t.Fatalf("Write after a failed sync = %v, want %v", err, fail)
	}
}
