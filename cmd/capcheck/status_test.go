package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/internal/filetest"
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

// A Redis that refuses --redis's settings for the whole --redis-wait (here
// shorter than the 30s grace) is a configuration error: exit 2 with what to
// fix (it was waited out for --redis-wait, then exit 1).
func TestRedisMisconfiguredExits2(t *testing.T) {
	srv := redistest.Shared(t)
	start := time.Now()
	code, _, errs := runInProcess(t, nil, "status", "--redis", "redis://"+srv.Addr+"/999", "--redis-wait", "1s")
	if code != exitUsage || !strings.Contains(errs, "has no database of the number in --redis") {
		t.Errorf("status on a database out of range: exit %d, stderr %q; want %d saying what to fix", code, errs, exitUsage)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("status took %s: waited", d)
	}
}

// A worker that writes files (--out given) checks at start that it can
// write under --out: exit 2 naming it. It started anyway, and its finalize
// tasks failed for hours. wait only warns: a worker sharing the folder
// (mounted read-only on wait's host) may have written the files.
func TestOutNotWritableExits2(t *testing.T) {
	srv := redistest.Shared(t)
	notDir := filetest.Temp(t, "out", "a file, not a folder\n")
	id := redistest.NewPrefix(t) // a job that runs: wait would wait
	if _, _, err := jobstore.New(srv.Client(t)).CreateJob(context.Background(),
		jobstore.Spec{ID: id, Input: "in.csv", Fingerprint: "fp", ChunkSize: 10}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"worker", "--api-url", "http://127.0.0.1:1", "--sid", "sid", "--api-key", "k3y", "--callback-profile-id", "p"},
	} {
		args = append(args, "--redis", srv.URL, "--out", notDir)
		done := make(chan struct{})
		var code int
		var errs string
		go func() {
			defer close(done)
			code, _, errs = runInProcess(t, nil, args...)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s with --out a file: still running", args[0])
		}
		if code != exitUsage || !strings.Contains(errs, "--out "+notDir+" is not a folder this process can write files in") {
			t.Errorf("%s with --out a file: exit %d, stderr %q; want %d naming --out", args[0], code, errs, exitUsage)
		}
	}
	code, _, errs := runInProcess(t, nil, "wait", id, "--timeout", "500ms", "--redis", srv.URL, "--out", notDir)
	if code == exitUsage || !strings.Contains(errs, "wait cannot write under --out") || !strings.Contains(errs, "timed out") {
		t.Errorf("wait with --out a file: exit %d, stderr %q; want a warning, then the wait (timed out)", code, errs)
	}
}
