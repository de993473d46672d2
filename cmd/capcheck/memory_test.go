package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/embedded"
	"github.com/capcheck/capcheck/internal/redistest"
)

// memory stats, export and forget on a Redis holding three answers, one of
// them older than --forget-after.
func TestMemoryCommand(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartPrivate(t)
	mem := capstore.New(srv.Client(t), capstore.Options{})
	now := time.Now().UTC().Truncate(time.Second)
	err := mem.Remember(ctx, threeAnswers(now))
	if err != nil {
		t.Fatal(err)
	}
	st := memoryStatsJSON(t, "--redis", srv.URL)
	if st.Numbers != 3 || st.Stale != 1 || st.ByCapability["rejected"] != 1 || st.ByAge["1d"] != 1 ||
		st.ByAge["7d"] != 1 || st.ByAge["older"] != 1 || st.Bytes <= 0 {
		t.Errorf("memory stats = %+v", st)
	}

	code, out, errs := runInProcess(t, nil, "memory", "export", "--redis", srv.URL)
	if code != 0 {
		t.Fatalf("memory export: exit %d\n%s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := map[string]bool{
		"number,capability,at,code,message":                                                              true,
		"+919876500001,capable," + now.Add(-time.Hour).Format(time.RFC3339) + ",,":                       true,
		"+919876500002,rejected," + now.Add(-48*time.Hour).Format(time.RFC3339) + `,E21,"'=not, mobile"`: true,
	}
	if len(lines) != len(want) || lines[0] != "number,capability,at,code,message" {
		t.Fatalf("memory export wrote:\n%s", out)
	}
	for _, l := range lines {
		if !want[l] {
			t.Errorf("memory export: unexpected line %q", l)
		}
	}

	if code, _, errs = runInProcess(t, nil, "memory", "forget", "--redis", srv.URL); code != 2 {
		t.Errorf("memory forget without numbers: exit %d, want 2\n%s", code, errs)
	}
	code, out, errs = runInProcess(t, nil, "memory", "forget", "--redis", srv.URL, "+919876500001", "+919876500009")
	if code != 0 || !strings.Contains(out, "forgot 1 of 2") {
		t.Fatalf("memory forget: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runInProcess(t, nil, "memory", "sweep", "--redis", srv.URL, "--forget-after", "24h")
	if code != 0 || !strings.Contains(out, "dropped 2 answers") {
		t.Fatalf("memory sweep: exit %d\n%s%s", code, out, errs)
	}
	recs, err := mem.Lookup(ctx, []uint64{919876500001, 919876500002, 919876500003})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if !r.IsZero() {
			t.Errorf("number %d still remembered: %+v", i, r)
		}
	}
	if err := mem.Remember(ctx, []capstore.Answer{{Number: 919876500004, Capability: capstore.Capable, At: now}}); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runInProcess(t, nil, "memory", "forget", "--all", "--redis", srv.URL)
	if code != 0 || !strings.Contains(out, "forgot 1 numbers") {
		t.Fatalf("memory forget --all: exit %d\n%s%s", code, out, errs)
	}
	if recs, err := mem.Lookup(ctx, []uint64{919876500004}); err != nil || !recs[0].IsZero() {
		t.Fatalf("after memory forget --all: %+v, %v; want nothing remembered", recs, err)
	}
	if reasons, err := mem.Reasons(ctx); err != nil || len(reasons) != 0 {
		t.Fatalf("after memory forget --all the reasons are %v (%v), want none", reasons, err)
	}
}

// With no Redis configured, the memory commands work on the file that runs
// on the embedded Redis keep under --out, and forget waits for no run.
func TestMemoryCommandOnTheEmbeddedFile(t *testing.T) {
	ctx := context.Background()
	out := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	r, err := embedded.Open(embedded.Config{Out: out, Target: "test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	err = capstore.New(r.Redis(), capstore.Options{}).Remember(ctx, threeAnswers(now))
	if err != nil {
		t.Fatal(err)
	}
	// A run working in --out: forget is refused.
	code, _, errs := runInProcess(t, nil, "memory", "forget", "--out", out, "+919876500001")
	if code == 0 || !strings.Contains(errs, "another 'capcheck run' on an embedded Redis is using --out") {
		t.Fatalf("memory forget during a run: exit %d\n%s", code, errs)
	}
	if err := r.Close(); err != nil { // saves the memory
		t.Fatal(err)
	}

	st := memoryStatsJSON(t, "--out", out)
	if st.Numbers != 3 || st.Stale != 1 || st.ByCapability["rejected"] != 1 || st.ByAge["1d"] != 1 ||
		st.File != embedded.MemoryPath(out) || st.BytesPerNumber < 13 || st.BytesPerNumber > 16+32 {
		t.Errorf("memory stats = %+v", st)
	}
	code, stdout, errs := runInProcess(t, nil, "memory", "export", "--out", out)
	want := "number,capability,at,code,message\n" +
		"+919876500001,capable," + now.Add(-time.Hour).Format(time.RFC3339) + ",,\n" +
		"+919876500002,rejected," + now.Add(-48*time.Hour).Format(time.RFC3339) + `,E21,"'=not, mobile"` + "\n"
	if code != 0 || stdout != want {
		t.Fatalf("memory export: exit %d\n%s\nwant\n%s%s", code, stdout, want, errs)
	}
	code, stdout, errs = runInProcess(t, nil, "memory", "forget", "--out", out, "+919876500001", "+919876500009")
	if code != 0 || !strings.Contains(stdout, "forgot 1 of 2") {
		t.Fatalf("memory forget: exit %d\n%s%s", code, stdout, errs)
	}
	code, stdout, errs = runInProcess(t, nil, "memory", "sweep", "--out", out, "--forget-after", "24h")
	if code != 0 || !strings.Contains(stdout, "dropped 2 answers") {
		t.Fatalf("memory sweep: exit %d\n%s%s", code, stdout, errs)
	}
	m, err := embedded.OpenMemory(out)
	if err != nil || m.Len() != 0 {
		t.Fatalf("after forget and sweep: %d numbers, %v", m.Len(), err)
	}
	m.Close()
	code, stdout, errs = runInProcess(t, nil, "memory", "forget", "--all", "--out", out)
	if code != 0 || !strings.Contains(stdout, "forgot 0 numbers") {
		t.Fatalf("memory forget --all: exit %d\n%s%s", code, stdout, errs)
	}
	if _, err := os.Stat(embedded.MemoryPath(out)); !os.IsNotExist(err) {
		t.Fatalf("the memory file is still there after forget --all: %v", err)
	}
}

// threeAnswers are what the memory tests start from: an answer an hour old,
// a rejection two days old, and one older than --forget-after's default.
func threeAnswers(now time.Time) []capstore.Answer {
	return []capstore.Answer{
		{Number: 919876500001, Capability: capstore.Capable, At: now.Add(-time.Hour)},
		{Number: 919876500002, Capability: capstore.Rejected, Code: "E21", Message: "=not, mobile", At: now.Add(-48 * time.Hour)},
		{Number: 919876500003, Capability: capstore.NotCapable, At: now.Add(-200 * 24 * time.Hour)},
	}
}

// memoryStatsJSON runs memory stats --json with args and decodes what it
// prints.
func memoryStatsJSON(t *testing.T, args ...string) memoryStats {
	t.Helper()
	code, out, errs := runInProcess(t, nil, append([]string{"memory", "stats", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("memory stats: exit %d\n%s", code, errs)
	}
	var st memoryStats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	return st
}
