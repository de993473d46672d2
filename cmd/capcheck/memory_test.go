package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/internal/redistest"
)

// memory stats, export and forget on a Redis holding three answers, one of
// them older than --forget-after.
func TestMemoryCommand(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartPrivate(t)
	mem := capstore.New(srv.Client(t), capstore.Options{})
	now := time.Now().UTC().Truncate(time.Second)
	err := mem.Remember(ctx, []capstore.Answer{
		{Number: 919876500001, Capability: capstore.Capable, At: now.Add(-time.Hour)},
		{Number: 919876500002, Capability: capstore.Rejected, Code: "E21", Message: "=not, mobile", At: now.Add(-48 * time.Hour)},
		{Number: 919876500003, Capability: capstore.NotCapable, At: now.Add(-200 * 24 * time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runInProcess(t, nil, "memory", "stats", "--json", "--redis", srv.URL)
	if code != 0 {
		t.Fatalf("memory stats: exit %d\n%s", code, errs)
	}
	var st memoryStats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.Numbers != 3 || st.Stale != 1 || st.ByCapability["rejected"] != 1 || st.ByAge["1d"] != 1 ||
		st.ByAge["7d"] != 1 || st.ByAge["older"] != 1 || st.Bytes <= 0 {
		t.Errorf("memory stats = %+v", st)
	}

	code, out, errs = runInProcess(t, nil, "memory", "export", "--redis", srv.URL)
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
}
