package worker

import (
	"context"
	"fmt"
	"strconv"

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
