package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
)

// rememberRejected writes the API's rejection of a range's numbers (after
// bisection, usually one) to the capability memory, before the outcome is
// recorded: a run killed in between sends them again and remembers them
// again, which is harmless (the newer answer wins).
func (cr *chunkRun) rememberRejected(ctx context.Context, o jobstore.Outcome) error {
	at := o.Time()
	ans := make([]capstore.Answer, 0, o.Hi-o.Lo)
	for k := o.Lo; k < o.Hi; k++ {
		n, err := strconv.ParseUint(cr.numbers[k][1:], 10, 64)
		if err != nil {
			return fmt.Errorf("chunk entry %d: number %q: %w", k, cr.numbers[k], err)
		}
		ans = append(ans, capstore.Answer{Number: n, Capability: capstore.Rejected, Code: o.Code, Message: o.Message, At: at})
	}
	return cr.w.caps.Remember(ctx, ans)
}

// memorySweepCheck is how often a worker offers to sweep the capability
// memory, the first time about memorySweepStart after it starts;
// memorySweepEvery is how often the fleet sweeps it (one worker does,
// whichever asks first).
const (
	memorySweepStart = time.Minute
	memorySweepCheck = time.Hour
	memorySweepEvery = 24 * time.Hour
)

// sweepMemory drops the memory's answers older than ForgetAfter once a day
// for the fleet. A worker is where it costs least: it runs anyway, between
// nights mostly idle, and each step is one short script on one bucket.
func (w *Worker) sweepMemory(ctx context.Context) {
	if w.cfg.ForgetAfter <= 0 {
		return
	}
	// Not at start: a worker starts when jobs come, and the sweep walks
	// all 16,384 buckets (a script call each).
	wait := memorySweepStart/2 + rand.N(memorySweepStart)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if _, err := w.sweepMemoryOnce(ctx, time.Now()); err != nil && ctx.Err() == nil {
			w.log.Warn("sweeping the capability memory failed; trying again later", "err", err)
		}
		wait = memorySweepCheck/2 + rand.N(memorySweepCheck)
	}
}

// sweepMemoryOnce sweeps when the fleet's daily sweep is due, and reports
// whether it did.
func (w *Worker) sweepMemoryOnce(ctx context.Context, now time.Time) (bool, error) {
	due, err := w.caps.SweepDue(ctx, memorySweepEvery)
	if err != nil || !due {
		return false, err
	}
	n, moved, err := w.caps.Sweep(ctx, now.Add(-w.cfg.ForgetAfter))
	if err != nil {
		return true, err
	}
	w.log.Info("swept the capability memory", "dropped", n, "old_layout_keys_moved", moved, "forget_after", w.cfg.ForgetAfter)
	return true, nil
}
