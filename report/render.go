package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"sort"
	"time"

	"gonum.org/v1/plot"

	"github.com/capcheck/capcheck/jobstore"
)

//go:embed report.html.tmpl
var pageSource string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"n":   func(v int64) string { return group(v) },
	"pct": pct,
	"dur": func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"ts":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"barWidth": func(d, longest time.Duration) float64 {
		return 12 * float64(d) / float64(longest)
	},
}).Parse(pageSource))

// view is what the page template reads.
type view struct {
	*Data
	Line, Meaning                   string
	Code                            int
	Rate, Callbacks, Country        template.HTML
	Counts, CapCounts, RejectCounts []kv
	Phases                          []Phase
	Longest                         time.Duration
	State                           jobstore.State
	RateAchieved                    float64
}

type kv struct {
	K string
	V int64
}

// Render writes the report as one self-contained HTML page.
func Render(w io.Writer, d *Data) error {
	v := &view{Data: d, Phases: d.Phases()}
	v.Line, v.Code, v.Meaning = d.Outcome()
	v.State = d.Job.State
	if v.State == jobstore.Finalizing && d.Numbers != nil {
		v.State = jobstore.FinalState(d.Job.Abort) // the report is written with the files
	}
	for _, ph := range v.Phases {
		v.Longest = max(v.Longest, ph.Duration)
	}
	var err error
	if v.Rate, err = svgOf(d.RatePlot()); err != nil {
		return err
	}
	if v.Callbacks, err = svgOf(d.CallbackPlot()); err != nil {
		return err
	}
	if v.Country, err = svgOf(d.CountryPlot()); err != nil {
		return err
	}
	if d.Numbers != nil {
		v.Counts = ordered(d.Results, "accepted", "rejected", "failed", "cached")
		if d.Capabilities != nil {
			v.CapCounts = ordered(d.Capabilities, "capable", "not_capable", "no_callback", "unknown")
		}
	}
	j := d.Job
	v.RejectCounts = []kv{{"invalid", j.Invalid}, {"missing", j.Missing}, {"malformed", j.Malformed}, {"duplicates", j.Duplicates}}
	if ph := v.Phases[1]; ph.Known && ph.Duration > 0 {
		v.RateAchieved = float64(j.Requests) / ph.Duration.Seconds()
	}
	return page.Execute(w, v)
}

func svgOf(p *plot.Plot, err error) (template.HTML, error) {
	if err != nil || p == nil {
		return "", err
	}
	b, err := SVG(p, plotW, plotH)
	if err != nil {
		return "", fmt.Errorf("drawing %q: %w", p.Title.Text, err)
	}
	return template.HTML(b), nil // drawn here: the plot's text is escaped by vgsvg
}

// ordered lists m's keys in the given order first, then any others sorted.
func ordered(m map[string]int64, first ...string) []kv {
	var out []kv
	seen := map[string]bool{}
	for _, k := range first {
		out = append(out, kv{k, m[k]})
		seen[k] = true
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		out = append(out, kv{k, m[k]})
	}
	return out
}

// group formats n with thousands separators: 1,234,567.
func group(n int64) string {
	s := itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func pct(a, b int64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}
