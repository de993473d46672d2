package callbacks

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// slowJSON is fromJSON without the in-place scan: the whole document
// decoded, then the paths followed.
func slowJSON(t testing.TB, numberField, statusField string, body []byte) ([]field, error) {
	t.Helper()
	r := &Receiver{cfg: Config{NumberField: numberField, StatusField: statusField}}
	return r.decodeJSON(body)
}

var scanSeeds = []string{
	`{"number":"919812345678","status":"capable"}`,
	`{"number":919812345678,"status":true}`,
	`{"number":"  9198 1234 5678 ","status":" Not_Capable "}`,
	`[{"number":"1","status":"a"},{"number":"2","status":"b"}]`,
	`[{"number":"1","status":"a"},{"status":"b"}]`,
	`[]`, `{}`, `[1]`, `"x"`, `{"number":null,"status":"a"}`,
	`{"number":"1","status":null}`, `{"number":"","status":"a"}`,
	`{"number":"1","number":"2","status":"a"}`,
	`{"data":{"mobile":"1"},"data":{"x":1},"status":"a"}`,
	`{"data":{"mobile":"1","status":{"v":"a"}},"status":["a"]}`,
	`{"data":[{"mobile":"1"}],"status":"a"}`,
	`{"nu\u006dber":"1","status":"caf\u00e9"}`,
	"{\"number\":\"1\",\"status\":\"\xff\"}",
	`{"number":"1\"2","status":"a\\"}`,
	`{"number":-1.5e3,"status":false}`,
	` { "number" : "1" , "status" : "a" } `,
	`{"number":"1","status":"a"}{}`,
	`{"number":"1","status":"a"`,
	`{"a":{"b":[1,{"c":"}"}]},"number":"1","status":"a"}`,
}

// FuzzScanJSON: whatever the in-place scan reads, the full decode reads the
// same, without error.
func FuzzScanJSON(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add(s, "number", "status")
		f.Add(s, "data.mobile", "data.status")
	}
	f.Fuzz(func(t *testing.T, body, numberField, statusField string) {
		if numberField == "" || statusField == "" {
			return
		}
		fast, ok := scanJSON([]byte(body), strings.Split(numberField, "."), strings.Split(statusField, "."))
		if !ok {
			return
		}
		slow, err := slowJSON(t, numberField, statusField, []byte(body))
		if err != nil || !slices.Equal(fast, slow) {
			t.Fatalf("body %q fields %q %q: scan read %q, decode read %q (%v)", body, numberField, statusField, fast, slow, err)
		}
	})
}

func TestScanJSONReadsTheCommonBodies(t *testing.T) {
	for _, tc := range []struct {
		body, number, status string
		want                 []field
	}{
		{`{"number":"919812345678","status":"capable"}`, "number", "status", []field{{"919812345678", "capable"}}},
		{`{"number":919812345678,"status":true}`, "number", "status", []field{{"919812345678", "true"}}},
		{`[{"n":"1","s":"a"},{"n":"2","s":"b"}]`, "n", "s", []field{{"1", "a"}, {"2", "b"}}},
		{`{"data":{"mobile":" 1 ","st":"x"},"data":{"mobile":"2","st":"y"}}`, "data.mobile", "data.st", []field{{"2", "y"}}},
		{`{"n\u0061":"caf\u00e9","s":"\"q\""}`, "na", "s", []field{{"café", `"q"`}}},
	} {
		got, ok := scanJSON([]byte(tc.body), strings.Split(tc.number, "."), strings.Split(tc.status, "."))
		if !ok || !slices.Equal(got, tc.want) {
			t.Errorf("%s: read %q %v, want %q", tc.body, got, ok, tc.want)
		}
	}
	// What the scan leaves to the full decode: errors, arrays on the
	// path, null, objects as status.
	for _, body := range []string{`[]`, `{}`, `{"number":"1"}`, `{"number":null,"status":"a"}`,
		`{"number":"1","status":{}}`, `{"number":"1","status":"a"}{}`, `[{"number":"1","status":"a"},2]`} {
		if got, ok := scanJSON([]byte(body), []string{"number"}, []string{"status"}); ok {
			t.Errorf("%s: read %q, want it left to the full decode", body, got)
		}
	}
}

func TestReplyIsWhatJSONMarshalWrites(t *testing.T) {
	for _, rep := range []reply{{}, {Stored: 1}, {Duplicate: 2}, {Stored: 3, Unsolicited: 12}, {Stored: 1, Duplicate: 1, Unsolicited: 1},
		{Error: `no "number" field`}, {Stored: 1, Error: "x"}} {
		want, _ := json.Marshal(rep)
		if got := rep.append(nil); string(got) != string(want) {
			t.Errorf("%+v: wrote %s, want %s", rep, got, want)
		}
	}
}
