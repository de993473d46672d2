package report_test

import (
	"bytes"
	"fmt"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/report"
)

// bigJob is the report data of a job of n numbers sent at rate requests/s
// of 100 numbers, with callbacks, 429s and retries, as a Tally makes it.
func bigJob(tb testing.TB, n int64, rate float64) *report.Data {
	tb.Helper()
	t0 := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	secs := int64(float64(n) / 100 / rate)
	perSec := map[int64]int64{}
	ser := &jobstore.Series{Limit: rate}
	for s := range secs {
		perSec[t0.Unix()+s] = int64(rate)
	}
	for _, p := range report.Coarsen(perSec, t0.Unix()) {
		b := jobstore.Bucket{Start: time.Unix(p.T, 0), Width: time.Duration(p.W) * time.Second, N: p.N}
		ser.Requests = append(ser.Requests, b)
		if p.T%97 == 0 {
			ser.RateLimited = append(ser.RateLimited, jobstore.Bucket{Start: b.Start, Width: b.Width, N: 1})
		}
		if p.T%13 == 0 {
			ser.Retries = append(ser.Retries, jobstore.Bucket{Start: b.Start, Width: b.Width, N: 3})
		}
	}
	tally := report.NewTally()
	r := rand.New(rand.NewPCG(1, 2))
	// A sample of the numbers (the Tally's cost is per number; its output
	// depends on the prefixes, not on the count).
	caps := []string{"capable", "not_capable", "no_callback"}
	for range 200_000 {
		num := fmt.Sprintf("+91%d%09d", 6+r.IntN(4), r.IntN(1_000_000_000))
		if r.IntN(10) == 0 {
			num = fmt.Sprintf("+44%d%09d", 7, r.IntN(1_000_000_000))
		}
		at := t0.Unix() + r.Int64N(secs+600)
		tally.Add(num, "accepted", caps[r.IntN(3)], at, at*1000)
	}
	nums := tally.Numbers(t0.Unix())
	scale := n / 200_000
	for k := range nums.Results {
		nums.Results[k] *= scale
	}
	j := &jobstore.Job{Spec: jobstore.Spec{ID: "nightly-10m", Input: "/lists/nightly.csv.gz"}, State: jobstore.Done,
		CallbackWait: time.Hour, CreatedAt: t0.Add(-40 * time.Second), EnqueuedAt: t0.Add(20 * time.Second),
		StartedAt: t0, AwaitAt: t0.Add(time.Duration(secs) * time.Second),
		FinalizingAt: t0.Add(time.Duration(secs+600) * time.Second), FinishedAt: t0.Add(time.Duration(secs+612) * time.Second)}
	j.Rows, j.Requests, j.Accepted = n, n/100, n
	return &report.Data{Job: j, Series: ser, Numbers: nums, WaitedForCallbacks: true, Generated: t0}
}

func TestRenderShowsFigures(t *testing.T) {
	t.Parallel()
	d := bigJob(t, 10_000_000, 100)
	var b bytes.Buffer
	if err := report.Render(&b, d); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"nightly-10m", "10,000,000", "Exit code <b>0</b>", "fleet limit", "+91", "+44",
		`id="plot-rate"><svg`, `id="plot-callbacks"><svg`, `id="plot-country"><svg`, "not recorded for this job"} {
		if !strings.Contains(page, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "https://") {
		t.Error("the report has a script or a link out: it must be self-contained")
	}
	if b.Len() > 2<<20 {
		t.Errorf("the report of a 10M-number job is %d bytes, want < 2 MB", b.Len())
	}
	var p bytes.Buffer
	if err := d.WritePNG(&p); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&p); err != nil {
		t.Fatal(err)
	}
}

func TestCoarsenIsBounded(t *testing.T) {
	t.Parallel()
	perSec := map[int64]int64{}
	const week = 7 * 24 * 3600
	for s := range int64(week) {
		perSec[s] = 2
	}
	pts := report.Coarsen(perSec, 0)
	var sum int64
	for _, p := range pts {
		sum += p.N
	}
	if sum != 2*week {
		t.Errorf("buckets hold %d, want %d", sum, 2*week)
	}
	if len(pts) > 6000 {
		t.Errorf("a week-long job keeps %d buckets, want a few thousand at most", len(pts))
	}
}

// BenchmarkReport10M writes the report of a 10M-number job (17 minutes at
// 100 requests/s of 100 numbers, an hour of callbacks).
func BenchmarkReport10M(b *testing.B) {
	d := bigJob(b, 10_000_000, 100)
	var size int
	for b.Loop() {
		var buf bytes.Buffer
		if err := report.Render(&buf, d); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size), "bytes/report")
}

// BenchmarkTally is the cost per number that the report adds to
// finalize's pass.
func BenchmarkTally(b *testing.B) {
	nums := make([]string, 1<<16)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range nums {
		nums[i] = fmt.Sprintf("+91%d%09d", 6+r.IntN(4), r.IntN(1_000_000_000))
	}
	t := report.NewTally()
	i := 0
	for b.Loop() {
		t.Add(nums[i&(len(nums)-1)], "accepted", "capable", 1_700_000_000+int64(i&1023), 1_700_000_000_000)
		i++
	}
}
