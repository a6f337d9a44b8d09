package reports

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"regexp"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// palette is colour-blind-friendly (Okabe–Ito) so lines stay distinguishable when a
// workshop projector washes colours out.
var palette = []color.NRGBA{
	{0, 114, 178, 255},   // blue
	{213, 94, 0, 255},    // vermillion
	{0, 158, 115, 255},   // green
	{204, 121, 167, 255}, // purple
	{230, 159, 0, 255},   // orange
	{86, 180, 233, 255},  // sky
	{0, 0, 0, 255},       // black
	{240, 228, 66, 255},  // yellow
}

var (
	faultFill   = color.NRGBA{R: 220, G: 50, B: 32, A: 40}
	faultText   = color.NRGBA{R: 170, G: 30, B: 20, A: 255}
	markerColor = color.NRGBA{R: 0, G: 120, B: 60, A: 255}
	sansFont    = font.Font{Typeface: "Liberation", Variant: "Sans"}
)

// series is one line of a chart with its style.
type series struct {
	line
	color  int
	dashed bool
	step   bool // a gauge: hold the value until the next bucket
}

// marker is a labelled vertical line, such as the convergence moment.
type marker struct {
	at    time.Duration
	label string
}

// chart describes one time chart.
type chart struct {
	ID      string // anchor and test hook
	Title   string
	YLabel  string
	Bucket  time.Duration
	End     time.Duration
	Series  []series
	Faults  []faultWindow
	Markers []marker
	YTicks  []plot.Tick // fixed ticks (breaker states)
	YMin    float64
	YMax    float64 // 0: automatic
}

// render draws the chart to an SVG fragment ready to inline in HTML. gonum/plot panics on
// some degenerate inputs; a report must not, so a panic becomes an error.
func (ch chart) render() (svg string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("render chart %s: %v", ch.ID, r)
		}
	}()
	p := plot.New()
	p.Title.Text = ch.Title
	p.Title.TextStyle.Font = font.From(sansFont, 11)
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		ax.Label.TextStyle.Font = font.From(sansFont, 9)
		ax.Tick.Label.Font = font.From(sansFont, 8)
	}
	p.Legend.TextStyle.Font = font.From(sansFont, 8)
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(6)
	p.Legend.YOffs = -vg.Points(2)
	p.X.Label.Text = "seconds since load start"
	p.Y.Label.Text = ch.YLabel
	end := ch.End.Seconds()
	if !(end > 0) {
		end = 1
	}
	p.X.Min, p.X.Max = 0, end
	p.Add(plotter.NewGrid())
	p.Add(faultBands{faults: ch.Faults, end: end})

	ymax := ch.YMax
	for _, s := range ch.Series {
		segs := segments(s, ch.Bucket)
		for i, seg := range segs {
			l, err := plotter.NewLine(seg)
			if err != nil {
				return "", fmt.Errorf("render chart %s: %w", ch.ID, err)
			}
			l.LineStyle.Color = palette[s.color%len(palette)]
			l.LineStyle.Width = vg.Points(1.3)
			if s.dashed {
				l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			}
			if s.step {
				l.StepStyle = plotter.PostStep
			}
			p.Add(l)
			if i == 0 {
				p.Legend.Add(s.Name, l)
			}
			for _, xy := range seg {
				if ch.YMax == 0 {
					ymax = math.Max(ymax, xy.Y)
				}
			}
		}
	}
	p.Add(markers{ms: ch.Markers})
	p.X.Min, p.X.Max = 0, end
	p.Y.Min = ch.YMin
	if ymax <= ch.YMin {
		ymax = ch.YMin + 1
	}
	if ch.YMax == 0 {
		ymax *= 1.15 // headroom for the fault labels and the legend
	}
	p.Y.Max = ymax
	if len(ch.YTicks) > 0 {
		p.Y.Tick.Marker = plot.ConstantTicks(ch.YTicks)
	}

	c := vgsvg.New(9*vg.Inch, 3*vg.Inch)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("render chart %s: %w", ch.ID, err)
	}
	return inlineSVG(buf.String(), ch.ID, ch.Title), nil
}

var (
	xmlnsAttr = regexp.MustCompile(`\s+xmlns(:\w+)?="[^"]*"`)
	svgOpen   = regexp.MustCompile(`<svg\s`)
)

// inlineSVG turns a standalone SVG document into an element for an HTML page: the XML
// prolog and comment go, and so do the namespace declarations, which an HTML parser
// implies and which would otherwise be the only URLs in a page that must reference none.
func inlineSVG(doc, id, title string) string {
	if i := strings.Index(doc, "<svg"); i >= 0 {
		doc = doc[i:]
	}
	doc = xmlnsAttr.ReplaceAllString(doc, "")
	attrs := fmt.Sprintf(`<svg class="chart" id="%s" role="img" aria-label="%s" `, htmlAttr(id), htmlAttr(title))
	return svgOpen.ReplaceAllLiteralString(doc, attrs)
}

func htmlAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", `"`, "&quot;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// segments splits a series at missing buckets so a gap is drawn as a gap, not as a line
// across it. Gauges hold their last value until the next sample instead.
func segments(s series, bucket time.Duration) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	w := bucket.Seconds()
	last := math.NaN()
	for i, y := range s.Y {
		if s.step && math.IsNaN(y) {
			y = last
		}
		if math.IsNaN(y) || math.IsInf(y, 0) {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = nil
			}
			continue
		}
		last = y
		x := (float64(i) + 0.5) * w
		if s.step {
			x = float64(i) * w
		}
		cur = append(cur, plotter.XY{X: x, Y: y})
	}
	if s.step && len(cur) > 0 {
		cur = append(cur, plotter.XY{X: float64(len(s.Y)) * w, Y: cur[len(cur)-1].Y})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// faultBands shades every fault window across the full height of the data area and
// writes the fault's name at its top, so cause and effect line up on every chart.
type faultBands struct {
	faults []faultWindow
	end    float64
}

var _ plot.Plotter = faultBands{}

// Plot implements plot.Plotter.
func (b faultBands) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	sty := draw.TextStyle{
		Color: faultText, Font: font.From(sansFont, 8),
		XAlign: draw.XLeft, YAlign: draw.YTop, Handler: p.TextHandler,
	}
	labels := 0
	for _, f := range b.faults {
		x0, x1 := f.Start.Seconds(), f.End.Seconds()
		name := f.Name
		if f.End <= f.Start {
			x1 = b.end
			name += " (not healed)"
		}
		pts := []vg.Point{
			{X: trX(x0), Y: c.Min.Y}, {X: trX(x1), Y: c.Min.Y},
			{X: trX(x1), Y: c.Max.Y}, {X: trX(x0), Y: c.Max.Y},
		}
		fill, text := faultFill, faultText
		if f.Color > 0 {
			text = palette[(f.Color-1)%len(palette)]
			fill = text
			fill.A = faultFill.A
		}
		c.FillPolygon(fill, c.ClipPolygonX(pts))
		if f.Name == "" {
			continue // a further repeat of a window already named
		}
		s := sty
		s.Color = text
		y := c.Max.Y - vg.Points(2+10*float64(labels%3))
		labels++
		c.FillText(s, vg.Point{X: trX(x0) + vg.Points(2), Y: y}, name)
	}
}

// markers draws labelled vertical lines.
type markers struct{ ms []marker }

var _ plot.Plotter = markers{}

// Plot implements plot.Plotter.
func (m markers) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	ls := draw.LineStyle{Color: markerColor, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}}
	sty := draw.TextStyle{
		Color: markerColor, Font: font.From(sansFont, 8),
		XAlign: draw.XRight, YAlign: draw.YBottom, Handler: p.TextHandler,
	}
	for _, mk := range m.ms {
		x := trX(mk.at.Seconds())
		if !c.ContainsX(x) {
			continue
		}
		c.StrokeLine2(ls, x, c.Min.Y, x, c.Max.Y)
		c.FillText(sty, vg.Point{X: x - vg.Points(2), Y: c.Min.Y + vg.Points(2)}, mk.label)
	}
}
