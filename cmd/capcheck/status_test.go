package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/ratelimit"
)

// status shows a fleet pause in force, and when it ends, on a job that is
// not finished. A private Redis: the pause holds every job of the Redis.
func TestStatusShowsFleetPause(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartPrivate(t)
	rdb := srv.Client(t)
	const id = "paused-job"
	if _, _, err := jobstore.New(rdb).CreateJob(ctx, jobstore.Spec{ID: id, Input: "in.csv", Fingerprint: "fp", ChunkSize: 10}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runInProcess(t, nil, "status", "--json", "--redis", srv.URL, id)
	if code != 0 {
		t.Fatalf("status --json: exit %d\n%s", code, errs)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["fleet_paused_until"]; ok {
		t.Errorf("fleet_paused_until without a pause: %s", out)
	}

	lim, err := ratelimit.New(rdb, ratelimit.Config{Limit: ratelimit.PerSecond(10)})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := lim.Pause(ctx, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runInProcess(t, nil, "status", "--json", "--redis", srv.URL, id)
	if code != 0 {
		t.Fatalf("status --json: exit %d\n%s", code, errs)
	}
	var st struct {
		Until time.Time `json:"fleet_paused_until"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	// The end is on the Redis clock: within a few seconds of this one.
	if want := before.Add(3 * time.Minute); st.Until.Before(want.Add(-10*time.Second)) || st.Until.After(want.Add(10*time.Second)) {
		t.Errorf("fleet_paused_until = %v, want about %v\n%s", st.Until, want, out)
	}

	code, out, errs = runInProcess(t, nil, "status", "--redis", srv.URL, id)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, errs)
	}
	if !regexp.MustCompile(`(?m)^fleet\s+paused after a 429 until \d\d:\d\d:\d\d \(\d+m\d+s left\)`).MatchString(out) {
		t.Errorf("status does not show the fleet pause:\n%s", out)
	}
	code, out, errs = runInProcess(t, nil, "status", "--redis", srv.URL)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, errs)
	}
	if !regexp.MustCompile(`(?m)^fleet paused after a 429 until `).MatchString(out) {
		t.Errorf("status without JOB does not show the fleet pause:\n%s", out)
	}
}

// A Redis that refuses --redis's settings is a configuration error: exit 2
// at once with what to fix (it was waited out for --redis-wait, then exit 1).
func TestRedisMisconfiguredExits2(t *testing.T) {
	srv := redistest.Shared(t)
	start := time.Now()
	code, _, errs := runInProcess(t, nil, "status", "--redis", "redis://"+srv.Addr+"/999", "--redis-wait", "1m")
	if code != exitUsage || !strings.Contains(errs, "has no database of the number in --redis") {
		t.Errorf("status on a database out of range: exit %d, stderr %q; want %d saying what to fix", code, errs, exitUsage)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("status took %s: waited", d)
	}
}
