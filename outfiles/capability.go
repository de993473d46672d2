package outfiles

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
)

// NoCallback is the capability of an accepted number whose callback did
// not come within the job's callback wait.
const NoCallback = "no_callback"

// capability is what the capability and capability_at columns say.
type capability struct {
	name, at string
	unix     int64 // at, in Unix seconds; 0 when none
}

// capabilities reads the capabilities of a job's accepted numbers, chunk by
// chunk, and releases their awaiting entries (the job is finished: a later
// callback is recorded, unsolicited, and the next export writes it).
type capabilities struct {
	caps  *capstore.Store
	job   *jobstore.Job
	since time.Time // records older than the job answer another job
}

func newCapabilities(s *jobstore.Store, j *jobstore.Job) *capabilities {
	if j.CallbackWait <= 0 {
		return nil // the job waited for no callbacks: the columns stay empty
	}
	return &capabilities{caps: capstore.New(s.Redis(), capstore.Options{}), job: j,
		since: j.CreatedAt.Truncate(time.Second)}
}

// chunk returns the capability of each entry of a chunk, settled by
// outs[by[k]]; nil when the job waited for no callbacks (none has one).
func (c *capabilities) chunk(ctx context.Context, entries []jobstore.Entry, outs []jobstore.Outcome, by []int32) ([]capability, error) {
	if c == nil {
		return nil, nil
	}
	out := make([]capability, len(entries))
	var idx []int
	var nums []uint64
	for k, e := range entries {
		if outs[by[k]].Status != jobstore.Accepted {
			continue
		}
		n, err := strconv.ParseUint(e.Number[1:], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("job %s: number %q: %w", c.job.ID, e.Number, err)
		}
		idx, nums = append(idx, k), append(nums, n)
	}
	if len(nums) == 0 {
		return out, nil
	}
	recs, err := c.caps.Lookup(ctx, nums)
	if err != nil {
		return nil, err
	}
	for i, r := range recs {
		switch {
		case r.At.Before(c.since) || r.Capability == capstore.None || r.Capability == capstore.Rejected:
			out[idx[i]] = capability{name: NoCallback}
		default:
			out[idx[i]] = capability{name: r.Capability.String(), at: r.At.Format(time.RFC3339), unix: r.At.Unix()}
		}
	}
	if ord, err := c.caps.RegisterJob(ctx, c.job.ID); err == nil {
		err = c.caps.Release(ctx, ord, nums)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
