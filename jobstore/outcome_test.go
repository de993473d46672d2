package jobstore

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPending(t *testing.T) {
	t.Parallel()
	acc := func(lo, hi int) Outcome { return Outcome{Lo: lo, Hi: hi, Status: Accepted, Attempts: 1} }
	split := func(lo, hi, attempts int) Outcome { return Outcome{Lo: lo, Hi: hi, Split: true, Attempts: attempts} }
	tests := []struct {
		name  string
		n     int
		batch int
		outs  []Outcome
		want  []Range
	}{
		{"fresh", 250, 100, nil, []Range{{0, 100, 0}, {100, 200, 0}, {200, 250, 0}}},
		{"first batch recorded", 250, 100, []Outcome{acc(0, 100)}, []Range{{100, 200, 0}, {200, 250, 0}}},
		{"all recorded", 200, 100, []Outcome{acc(0, 100), acc(100, 200)}, nil},
		{"bisected, one half done", 100, 100, []Outcome{split(0, 100, 1), acc(0, 50)}, []Range{{50, 100, 1}}},
		{"bisected twice", 100, 100, []Outcome{split(0, 100, 1), split(50, 100, 2), acc(50, 75)},
			[]Range{{0, 50, 1}, {75, 100, 2}}},
		{"other batch size on resume", 100, 30, []Outcome{acc(0, 50)}, []Range{{50, 60, 0}, {60, 90, 0}, {90, 100, 0}}},
		{"empty chunk", 0, 100, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Pending(tt.n, tt.batch, tt.outs)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Pending (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSettle(t *testing.T) {
	t.Parallel()
	outs := []Outcome{
		{Lo: 0, Hi: 4, Split: true, Attempts: 1},
		{Lo: 0, Hi: 2, Status: Accepted, Code: "MSG402", Attempts: 2},
		{Lo: 2, Hi: 3, Status: Rejected, Code: "RBC529", Attempts: 3},
	}
	per, all := Settle(4, outs)
	if all {
		t.Fatal("entry 3 is not settled, Settle says all are")
	}
	if per[0].Status != Accepted || per[1].Status != Accepted || per[2].Status != Rejected || per[3].Status != "" {
		t.Errorf("Settle = %+v", per)
	}
	outs = append(outs, Outcome{Lo: 3, Hi: 4, Status: Failed, Message: "503"})
	if _, all := Settle(4, outs); !all {
		t.Error("all entries settled, Settle says not")
	}
}

func TestRedriven(t *testing.T) {
	t.Parallel()
	tests := []struct {
		o    Outcome
		want bool
	}{
		{Outcome{Status: Accepted}, false},
		{Outcome{Status: Rejected, Code: "RBC529"}, false},
		{Outcome{Status: Failed, Message: "503"}, true},
		{Outcome{Split: true, Attempts: 1}, true},
	}
	for _, tt := range tests {
		if got := tt.o.Redriven(); got != tt.want {
			t.Errorf("%+v.Redriven() = %v, want %v", tt.o, got, tt.want)
		}
	}
}
