package enqueue

import (
	"context"

	"github.com/capcheck/capcheck/capstore"
)

// Memory is the capability memory as enqueue reads it: what was last
// answered for each number. *capstore.Store is the fleet's, in Redis; the
// embedded run has one on disk under --out.
type Memory interface {
	// Recall sets out[i] to the remembered record of numbers[i] (E.164
	// digits as an integer, as capstore keys them), or to the zero Record
	// when there is none. len(out) >= len(numbers). It is called with
	// large batches and from several goroutines at once.
	Recall(ctx context.Context, numbers []uint64, out []capstore.Record) error
}

var _ Memory = (*capstore.Store)(nil)
