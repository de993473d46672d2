package enqueue

import (
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// progressEvery is how often the progress line is redrawn (at most 4×/s).
const progressEvery = 250 * time.Millisecond

// isTerminal reports whether w is a terminal: the progress line is for
// people, not for log files.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress redraws one line on a terminal: rows read and rows per second.
type progress struct {
	w     io.Writer
	start time.Time
	rows  atomic.Int64
	stopc chan struct{}
	done  chan struct{}
}

func startProgress(w io.Writer, start time.Time) *progress {
	p := &progress{w: w, start: start, stopc: make(chan struct{}), done: make(chan struct{})}
	go p.loop(time.NewTicker(progressEvery).C)
	return p
}

func (p *progress) loop(tick <-chan time.Time) {
	defer close(p.done)
	for {
		select {
		case <-p.stopc:
			fmt.Fprint(p.w, "\r\x1b[K") // leave the terminal clean for the summary
			return
		case now := <-tick:
			fmt.Fprint(p.w, "\r\x1b[K"+progressLine(p.rows.Load(), now.Sub(p.start)))
		}
	}
}

// progressLine is the text of the line.
func progressLine(rows int64, elapsed time.Duration) string {
	rate := float64(rows) / max(elapsed.Seconds(), 1e-3)
	return fmt.Sprintf("enqueue: %s rows read, %s rows/s, %s", groupDigits(rows), groupDigits(int64(rate)), elapsed.Truncate(time.Second))
}

// stop clears the line; a nil progress does nothing.
func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.stopc)
	<-p.done
}

// groupDigits writes 1234567 as 1,234,567.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3+1)
	if neg {
		out = append(out, '-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
