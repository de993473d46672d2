package report

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/capcheck/capcheck/jobstore"
)

const seriesPoints = jobstore.SeriesPoints

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

var (
	colRequests = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colLimit    = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	col429      = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colRetry    = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colCapable  = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colNot      = color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}
	colNone     = color.RGBA{R: 0xbb, G: 0xbb, B: 0xbb, A: 0xff}
)

// Plot sizes.
const (
	plotW = 8 * vg.Inch
	plotH = 3 * vg.Inch
)

// fromBuckets turns series buckets into per-second rates at each bucket's
// middle, with a zero where a gap of more than a bucket has no count (the
// line drops there instead of joining across it).
func fromBuckets(bs []Point) plotter.XYs {
	xy := make(plotter.XYs, 0, len(bs)+2)
	var end int64
	for i, b := range bs {
		if i > 0 && b.T > end+b.W {
			xy = append(xy, plotter.XY{X: float64(end), Y: 0}, plotter.XY{X: float64(b.T), Y: 0})
		}
		xy = append(xy, plotter.XY{X: float64(b.T) + float64(b.W)/2, Y: float64(b.N) / float64(b.W)})
		end = b.T + b.W
	}
	return xy
}

func points(bs []jobstore.Bucket) []Point {
	out := make([]Point, len(bs))
	for i, b := range bs {
		out[i] = Point{T: b.Start.Unix(), W: int64(b.Width / time.Second), N: b.N}
	}
	return out
}

// perSecondPlot is an empty plot of a rate over time: what per second
// (y, from 0) against the time of day in UTC (x).
func perSecondPlot(title, what string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = what + "/s"
	p.Y.Min = 0
	p.X.Tick.Marker = plot.TimeTicks{Format: "15:04:05", Time: func(t float64) time.Time {
		return time.Unix(int64(t), 0).UTC()
	}}
	p.X.Label.Text = "time (UTC)"
	return p
}

// RatePlot is the main plot: API requests per second over the job, the
// fleet limit, and the seconds with 429s and with retries marked.
func (d *Data) RatePlot() (*plot.Plot, error) {
	p := perSecondPlot("API requests per second", "requests")
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	s := d.Series
	if s == nil || len(s.Requests) == 0 {
		p.Title.Text += " (no request recorded)"
		return p, nil
	}
	req := fromBuckets(points(s.Requests))
	line, err := plotter.NewLine(req)
	if err != nil {
		return nil, err
	}
	line.Color = colRequests
	line.Width = vg.Points(1.2)
	p.Add(line)
	p.Legend.Add("requests/s", line)
	if s.Limit > 0 {
		lim, err := plotter.NewLine(plotter.XYs{{X: req[0].X, Y: s.Limit}, {X: req[len(req)-1].X, Y: s.Limit}})
		if err != nil {
			return nil, err
		}
		lim.Color, lim.Dashes, lim.Width = colLimit, []vg.Length{vg.Points(4), vg.Points(3)}, vg.Points(1)
		p.Add(lim)
		p.Legend.Add(fmt.Sprintf("fleet limit %g/s", s.Limit), lim)
	}
	p.Y.Max = max(p.Y.Max, s.Limit) * 1.4 // room for the legend
	if err := marks(p, s.RateLimited, req, col429, draw.TriangleGlyph{}, "429 (fleet paused)"); err != nil {
		return nil, err
	}
	if err := marks(p, s.Retries, req, colRetry, draw.CircleGlyph{}, "retries"); err != nil {
		return nil, err
	}
	return p, nil
}

// marks draws a glyph at the bottom of the plot for each bucket of bs.
func marks(p *plot.Plot, bs []jobstore.Bucket, ref plotter.XYs, c color.Color, g draw.GlyphDrawer, label string) error {
	if len(bs) == 0 {
		return nil
	}
	xy := make(plotter.XYs, len(bs))
	for i, b := range bs {
		xy[i] = plotter.XY{X: float64(b.Start.Unix()) + b.Width.Seconds()/2, Y: 0}
	}
	sc, err := plotter.NewScatter(xy)
	if err != nil {
		return err
	}
	sc.Color, sc.Shape, sc.Radius = c, g, vg.Points(3.5)
	p.Add(sc)
	n := int64(0)
	for _, b := range bs {
		n += b.N
	}
	p.Legend.Add(fmt.Sprintf("%s: %d", label, n), sc)
	return nil
}

// CallbackPlot draws the callbacks received per second over time.
func (d *Data) CallbackPlot() (*plot.Plot, error) {
	p := perSecondPlot("Callbacks received per second", "callbacks")
	if d.Numbers == nil || len(d.Callbacks) == 0 {
		return nil, nil
	}
	line, err := plotter.NewLine(fromBuckets(d.Callbacks))
	if err != nil {
		return nil, err
	}
	line.Color, line.Width = colCapable, vg.Points(1.2)
	p.Add(line)
	return p, nil
}

// CountryPlot draws capability by country calling code, stacked bars of
// the largest countries.
func (d *Data) CountryPlot() (*plot.Plot, error) {
	if d.Numbers == nil || len(d.ByCountry) == 0 || d.Capabilities == nil {
		return nil, nil
	}
	gs := d.ByCountry[:min(len(d.ByCountry), 12)]
	names := make([]string, len(gs))
	vals := [3]plotter.Values{}
	for i, g := range gs {
		names[i] = g.Key
		vals[0] = append(vals[0], float64(g.Capable))
		vals[1] = append(vals[1], float64(g.NotCapable))
		vals[2] = append(vals[2], float64(g.NoCallback+g.Unknown))
	}
	p := plot.New()
	p.Title.Text = "Capability by country calling code"
	p.Y.Label.Text = "numbers"
	p.Legend.Top = true
	var below *plotter.BarChart
	for k, label := range []string{"capable", "not capable", "no callback / unknown"} {
		b, err := plotter.NewBarChart(vals[k], vg.Points(22))
		if err != nil {
			return nil, err
		}
		b.Color = []color.Color{colCapable, colNot, colNone}[k]
		b.LineStyle.Width = 0
		if below != nil {
			b.StackOn(below)
		}
		below = b
		p.Add(b)
		p.Legend.Add(label, b)
	}
	p.NominalX(names...)
	return p, nil
}

// SVG renders p as an SVG element (no XML prolog), to inline in HTML.
func SVG(p *plot.Plot, w, h vg.Length) ([]byte, error) {
	c := vgsvg.New(w, h)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, err
	}
	out := b.Bytes()
	if i := bytes.Index(out, []byte("<svg")); i > 0 {
		out = out[i:]
	}
	return out, nil
}

// WritePNG writes the main plot (RatePlot) as a PNG, for a chat message.
func (d *Data) WritePNG(w io.Writer) error {
	p, err := d.RatePlot()
	if err != nil {
		return err
	}
	c := vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(plotW, plotH), vgimg.UseDPI(120),
		vgimg.UseBackgroundColor(color.White))}
	p.Draw(draw.New(c))
	_, err = c.WriteTo(w)
	return err
}
