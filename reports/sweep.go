package reports

import (
	"bufio"
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/faultline-dev/faultline/result"
)

var boundColor = color.NRGBA{R: 110, G: 110, B: 110, A: 255}

// SweepChart draws a load sweep on one chart (an SVG document): p99, p50 and the error
// rate against the offered rate, one panel each on one rate axis, every design in its own
// colour, solid with the scenario's faults and dashed without. Each curve's knee is
// ringed and named; a point the harness could not vouch for (result.SweepPoint.Invalid)
// is drawn as a cross, off its curve, so it is never read as the design's. The p99 and
// error panels show their bound.
func SweepChart(w io.Writer, sw *result.Sweep) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("render sweep chart: %v", r)
		}
	}()
	if sw == nil || len(sw.Rates) == 0 {
		return fmt.Errorf("render sweep chart: no rates")
	}
	panels := []struct {
		title, ylabel string
		value         func(p result.SweepPoint) float64
		bound         float64
		log           bool
	}{
		{"p99 latency", "p99 (ms, log)", func(p result.SweepPoint) float64 { return p.P99MS }, sw.Bounds.P99MS, true},
		{"p50 latency", "p50 (ms, log)", func(p result.SweepPoint) float64 { return p.P50MS }, 0, true},
		{"error rate", "errors (%)", func(p result.SweepPoint) float64 { return 100 * p.ErrorRate }, 100 * sw.Bounds.ErrorRate, false},
	}
	ticks := make([]plot.Tick, 0, len(sw.Rates))
	for _, r := range sw.Rates {
		ticks = append(ticks, plot.Tick{Value: r, Label: strconv.FormatFloat(r, 'f', -1, 64)})
	}
	xmin, xmax := sw.Rates[0]/1.25, sw.Rates[len(sw.Rates)-1]*1.25
	rows := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		if i == 0 {
			p.Title.Text = fmt.Sprintf("%s: %s against offered load (window %s–%s of the load)", sw.Scenario, pn.title,
				fmtSeconds(sw.WindowStartMS), fmtSeconds(sw.WindowEndMS))
		}
		p.Title.TextStyle.Font = font.From(sansFont, 10)
		for _, ax := range []*plot.Axis{&p.X, &p.Y} {
			ax.Label.TextStyle.Font = font.From(sansFont, 9)
			ax.Tick.Label.Font = font.From(sansFont, 8)
		}
		p.Legend.TextStyle.Font = font.From(sansFont, 8)
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.XOffs, p.Legend.YOffs = vg.Points(4), -vg.Points(2)
		p.X.Label.Text = "offered rate (requests/s, log)"
		p.Y.Label.Text = pn.ylabel
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
		p.X.Min, p.X.Max = xmin, xmax
		p.Add(plotter.NewGrid())
		ymin, ymax := math.Inf(1), math.Inf(-1)
		note := func(v float64) {
			if pn.log {
				v = math.Max(v, 0.1)
			}
			ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
		}
		if pn.bound > 0 {
			note(pn.bound)
		}
		for di, d := range sw.Designs {
			col := palette[di%len(palette)]
			for _, c := range d.Curves {
				var valid, invalid, knee plotter.XYs
				for _, pt := range c.Points {
					v := pn.value(pt)
					if pn.log {
						v = math.Max(v, 0.1)
					}
					note(v)
					xy := plotter.XY{X: pt.Rate, Y: v}
					if pt.Invalid {
						invalid = append(invalid, xy)
						continue
					}
					valid = append(valid, xy)
					if c.Knee.Found && pt.Rate == c.Knee.Rate {
						knee = append(knee, xy)
					}
				}
				label := d.Design + " " + modeLabel(c.Faults)
				style := draw.LineStyle{Color: col, Width: vg.Points(1.4)}
				if !c.Faults {
					style.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
				}
				dot := draw.GlyphStyle{Color: col, Radius: vg.Points(2.2), Shape: draw.CircleGlyph{}}
				if i == 0 {
					// Every curve is in the legend, one whose points were all invalid too:
					// its crosses are then the only trace of it.
					p.Legend.Add(label, &plotter.Line{LineStyle: style}, &plotter.Scatter{GlyphStyle: dot})
				}
				if len(valid) > 0 {
					l, s, err := plotter.NewLinePoints(valid)
					if err != nil {
						return fmt.Errorf("render sweep chart: %w", err)
					}
					l.LineStyle, s.GlyphStyle = style, dot
					p.Add(l, s)
				}
				if len(invalid) > 0 {
					s, err := plotter.NewScatter(invalid)
					if err != nil {
						return fmt.Errorf("render sweep chart: %w", err)
					}
					s.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(3.5), Shape: draw.CrossGlyph{}}
					p.Add(s)
				}
				if len(knee) > 0 {
					s, err := plotter.NewScatter(knee)
					if err != nil {
						return fmt.Errorf("render sweep chart: %w", err)
					}
					s.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(6), Shape: draw.RingGlyph{}}
					lb, err := plotter.NewLabels(plotter.XYLabels{XYs: knee, Labels: []string{"knee " + label}})
					if err != nil {
						return fmt.Errorf("render sweep chart: %w", err)
					}
					for j := range lb.TextStyle {
						lb.TextStyle[j].Color = col
						lb.TextStyle[j].Font = font.From(sansFont, 7)
					}
					// Designs whose knees share a rate would write over each other: each
					// design's label sits on its own line.
					lb.Offset = vg.Point{X: vg.Points(7), Y: vg.Points(-3 - 9*float64(di))}
					p.Add(s, lb)
				}
			}
		}
		if math.IsInf(ymin, 0) {
			ymin, ymax = 0, 1
		}
		if pn.log {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
			// The first panel carries the legend: a decade and a half of headroom keeps it
			// above the curves.
			head := 2.0
			if i == 0 {
				head = 15
			}
			p.Y.Min, p.Y.Max = ymin/1.5, ymax*head
		} else {
			p.Y.Min, p.Y.Max = 0, math.Max(ymax*1.3, 1)
		}
		if pn.bound > 0 {
			b, err := plotter.NewLine(plotter.XYs{{X: xmin, Y: pn.bound}, {X: xmax, Y: pn.bound}})
			if err != nil {
				return fmt.Errorf("render sweep chart: %w", err)
			}
			b.LineStyle = draw.LineStyle{Color: boundColor, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(1), vg.Points(2)}}
			p.Add(b)
			p.Legend.Add(boundLabel(sw, i == 0), b)
		}
		rows[i] = []*plot.Plot{p}
	}
	c := vgsvg.New(9*vg.Inch, 8*vg.Inch)
	dc := draw.New(c)
	canvases := plot.Align(rows, draw.Tiles{Rows: len(rows), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadY: vg.Points(10), PadX: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(6)}, dc)
	for i := range rows {
		rows[i][0].Draw(canvases[i][0])
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return fmt.Errorf("render sweep chart: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

func boundLabel(sw *result.Sweep, p99 bool) string {
	if p99 {
		return fmt.Sprintf("bound %s (%s)", fmtMillis(sw.Bounds.P99MS), sw.Bounds.P99Source)
	}
	return fmt.Sprintf("bound %s (%s)", fmtShare(sw.Bounds.ErrorRate), sw.Bounds.ErrorRateSource)
}

func modeLabel(faults bool) string {
	if faults {
		return "with faults"
	}
	return "without faults"
}

// SweepMarkdown writes a load sweep as Markdown: the bounds and where they came from,
// each design's knee with and without the faults, and every point with what the harness
// measured of itself (rate achieved, scheduling lag, CPU), invalid points marked.
func SweepMarkdown(w io.Writer, sw *result.Sweep) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "## Load sweep: %s\n\n", mdText(sw.Scenario))
	fmt.Fprintf(bw, "Each point is one run at a constant offered rate; latency and errors are of the requests that started in %s–%s of the load (the faults' window; the same span without faults). ",
		fmtSeconds(sw.WindowStartMS), fmtSeconds(sw.WindowEndMS))
	fmt.Fprintf(bw, "Knee: the first valid rate where p99 > %s (%s) or errors > %s (%s). ",
		fmtMillis(sw.Bounds.P99MS), mdText(sw.Bounds.P99Source), fmtShare(sw.Bounds.ErrorRate), mdText(sw.Bounds.ErrorRateSource))
	fmt.Fprintf(bw, "A point is invalid — the harness's limit, not the design's, and left out of the knee — when the load generator sent under %s of the requests due or its scheduling lag p99 exceeded %s; CPU is the machine's (%d cores) over the load, with this process's share in brackets, *busy* from %s.\n\n",
		fmtShare(sw.Harness.MinRateShare), fmtMillis(sw.Harness.MaxLagP99MS), sw.Harness.CPUs, fmtShare(sw.Harness.BusyCPU))
	fmt.Fprintln(bw, "| design | knee with faults | knee without faults |")
	fmt.Fprintln(bw, "|---|---|---|")
	for _, d := range sw.Designs {
		knees := map[bool]string{true: "—", false: "—"}
		for _, c := range d.Curves {
			knees[c.Faults] = kneeText(c.Knee)
		}
		fmt.Fprintf(bw, "| %s | %s | %s |\n", cell(d.Design), cell(knees[true]), cell(knees[false]))
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "| design | faults | offered/s | sent/s | p50 | p99 | errors | lag p99 | CPU (harness) | point |")
	fmt.Fprintln(bw, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, d := range sw.Designs {
		for _, c := range d.Curves {
			for _, p := range c.Points {
				state := "valid"
				if p.Invalid {
					state = "**invalid**: " + p.Reason
				}
				if c.Knee.Found && p.Rate == c.Knee.Rate && !p.Invalid {
					state = "**knee**: " + c.Knee.Why
				}
				if p.Busy {
					state += " (busy machine)"
				}
				fmt.Fprintf(bw, "| %s | %s | %g | %.1f | %s | %s | %s | %s | %s | %s |\n",
					cell(d.Design), yesNo(c.Faults), p.Rate, p.Achieved, fmtMillis(p.P50MS), fmtMillis(p.P99MS),
					fmtShare(p.ErrorRate), fmtMillis(p.LagP99MS), cpuText(p), cell(state))
			}
		}
	}
	return bw.Flush()
}

func kneeText(k result.SweepKnee) string {
	s := "none up to the highest rate (" + k.Why + ")"
	if k.Found {
		s = fmt.Sprintf("**%g/s** (%s)", k.Rate, k.Why)
	}
	if k.Excluded > 0 {
		s += fmt.Sprintf(", %d invalid point(s) left out", k.Excluded)
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func cpuText(p result.SweepPoint) string {
	if p.CPU < 0 {
		return "unknown"
	}
	s := fmtShare(p.CPU)
	if p.HarnessCPU >= 0 {
		s += " (" + fmtShare(p.HarnessCPU) + ")"
	}
	return s
}

// fmtMillis writes milliseconds: seconds to 10 ms from a second up, else to a tenth of a ms.
func fmtMillis(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(math.Round(v/10)/100, 'f', -1, 64) + " s"
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) + " ms"
}

func fmtSeconds(msv float64) string {
	return strconv.FormatFloat(math.Round(msv)/1000, 'f', -1, 64) + " s"
}

func fmtShare(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/10, 'f', -1, 64) + " %"
}
