package jobstore

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The job's time series, for its report: requests, 429s and retries counted
// per time bucket as the workers record them, in one hash. A bucket is one
// second wide for the first SeriesPoints seconds of the job, then twice as
// wide each time the job's age doubles, so a job of any length keeps about
// SeriesPoints/2 buckets per doubling (about 3,000 fields per series for a
// week-long job) and the counting stays one HINCRBY inside the script that
// already records the call.

// SeriesPoints is how many one-second buckets a job keeps before they
// widen.
const SeriesPoints = 600

// Series kinds: the first letter of a bucket's field.
const (
	SeriesRequests    = 'r'
	SeriesRateLimited = 'l'
	SeriesRetries     = 't'
)

// seriesKey is the series of group g of job id (g < 0: the job's own).
func seriesKey(id string, g int) string { return groupKey(id, g) + ":series" }

// seriesLua defines series_add(key, now_s, kind, n, t0): the bucket of
// now_s counts n more of kind. t0 is the start the buckets are measured
// from: the job's creation, the same for every group of the job so that
// their buckets add up; when it is "" (a job created before groups), the
// hash's own t0, set by the first call. Fields are kind..start..":"..width.
// series_limit(key, rate) keeps the lowest fleet rate seen.
var seriesLua = `
local function series_add(key, now_s, kind, n, t0)
  t0 = tonumber(t0)
  if not t0 then t0 = tonumber(redis.call('HGET', key, 't0')) end
  if not t0 then
    t0 = now_s
    redis.call('HSET', key, 't0', t0)
  end
  local age = now_s - t0
  if age < 0 then age = 0 end
  local w = 1
  while age >= w * ` + strconv.Itoa(SeriesPoints) + ` do w = w * 2 end
  local b = now_s - (age % w)
  redis.call('HINCRBY', key, kind .. b .. ':' .. w, n)
end
local function series_limit(key, rate)
  if rate == '' then return end
  local cur = tonumber(redis.call('HGET', key, 'limit'))
  if not cur or tonumber(rate) < cur then redis.call('HSET', key, 'limit', rate) end
end
local series_kinds = {requests = 'r', rate_limited = 'l', retries = 't'}
`

// SetFleetLimit makes the store note rate (requests per second) as the fleet
// limit in the series of each job it records calls for: the report draws it.
// Replicas with different rates leave the lowest, the one the fleet uses.
// Call it before the store is used.
func (s *Store) SetFleetLimit(rate float64) {
	if rate > 0 {
		s.limit = strconv.FormatFloat(rate, 'f', -1, 64)
		s.limitRate = rate
	}
}

// Bucket is the count of one series over [Start, Start+Width).
type Bucket struct {
	Start time.Time
	Width time.Duration
	N     int64
}

// Series are a job's time series, buckets in time order.
type Series struct {
	Requests, RateLimited, Retries []Bucket
	// Limit is the fleet's rate limit (requests per second) while the job
	// ran; 0 when not known.
	Limit float64
}

// Series returns the job's time series: the sum of its groups'.
func (s *Store) Series(ctx context.Context, id string) (*Series, error) {
	j, err := s.Head(ctx, id)
	if errors.Is(err, ErrNotFound) {
		j, err = &Job{Spec: Spec{ID: id}}, nil
	}
	if err != nil {
		return nil, err
	}
	p := s.rdb.Pipeline()
	var cmds []*redis.MapStringStringCmd
	for g := -1; g < j.groups(); g++ {
		cmds = append(cmds, p.HGetAll(ctx, seriesKey(id, g)))
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, wrap("reading the series of", id, err)
	}
	out := &Series{}
	sum := map[string]int64{}
	for _, c := range cmds {
		h := c.Val()
		if l, err := strconv.ParseFloat(h["limit"], 64); err == nil && (out.Limit == 0 || l < out.Limit) {
			out.Limit = l
		}
		for f, v := range h {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				sum[f] += n
			}
		}
	}
	for f, n := range sum {
		if len(f) < 2 {
			continue
		}
		start, width, ok := strings.Cut(f[1:], ":")
		if !ok {
			continue
		}
		st, err1 := strconv.ParseInt(start, 10, 64)
		w, err2 := strconv.ParseInt(width, 10, 64)
		if err1 != nil || err2 != nil || w < 1 {
			continue
		}
		b := Bucket{Start: time.Unix(st, 0).UTC(), Width: time.Duration(w) * time.Second, N: n}
		switch f[0] {
		case SeriesRequests:
			out.Requests = append(out.Requests, b)
		case SeriesRateLimited:
			out.RateLimited = append(out.RateLimited, b)
		case SeriesRetries:
			out.Retries = append(out.Retries, b)
		}
	}
	for _, bs := range [][]Bucket{out.Requests, out.RateLimited, out.Retries} {
		sort.Slice(bs, func(i, j int) bool { return bs[i].Start.Before(bs[j].Start) })
	}
	return out, nil
}

func reportKey(id string) string { return jobKey(id) + ":report" }

// PutReportData stores what the job's report shows that is drawn from its
// numbers (made while its files are written), so that a report can be
// written again without reading every number.
func (s *Store) PutReportData(ctx context.Context, id string, b []byte) error {
	if err := s.rdb.Set(ctx, reportKey(id), b, 0).Err(); err != nil {
		return wrap("storing the report data of", id, err)
	}
	return nil
}

// ReportData returns what PutReportData stored, nil when nothing was.
func (s *Store) ReportData(ctx context.Context, id string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, reportKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap("reading the report data of", id, err)
	}
	return b, nil
}
