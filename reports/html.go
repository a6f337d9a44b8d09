package reports

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/result"
)

// Option tunes the HTML and comparison pages.
type Option func(*options)

type options struct {
	bucket time.Duration
	title  string
}

func buildOptions(opts []Option) options {
	o := options{bucket: time.Second}
	for _, fn := range opts {
		if fn != nil {
			fn(&o)
		}
	}
	if o.bucket <= 0 {
		o.bucket = time.Second
	}
	return o
}

// WithBucket sets the width of a time bucket (default one second): wider buckets smooth
// long soak runs, narrower ones resolve a fast failover.
func WithBucket(d time.Duration) Option { return func(o *options) { o.bucket = d } }

// WithTitle replaces the page title (default: the scenario name, or "Design comparison").
func WithTitle(title string) Option { return func(o *options) { o.title = title } }

//go:embed page.css
var pageCSS string

var funcs = template.FuncMap{
	"status":  statusWord,
	"lower":   strings.ToLower,
	"value":   formatValue,
	"bound":   bound,
	"figure":  figureText,
	"mark":    checkMark,
	"dur":     func(d result.Duration) string { return formatDur(d.Std()) },
	"std":     formatDur,
	"effect":  effectText,
	"join":    strings.Join,
	"css":     func() template.CSS { return template.CSS(pageCSS) },
	"percent": func(v float64) string { return formatValue(v, "ratio") },
	"num":     func(v float64) string { return trimFloat(v, 4) },
	"checkClass": func(c result.Check) string {
		switch {
		case c.Skipped:
			return "skip"
		case c.Passed:
			return "pass"
		}
		return "fail"
	},
	"divide": func(a, b float64) float64 {
		if b == 0 {
			return math.NaN()
		}
		return a / b
	},
	"utc": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
}

//go:embed run.html.tmpl
var runTmplText string

var runTmpl = template.Must(template.New("run").Funcs(funcs).Parse(runTmplText))

// renderedChart is a chart ready for the page.
type renderedChart struct {
	ID    string
	Title string
	Note  string        // why there is no chart, when SVG is empty
	SVG   template.HTML // produced by our own renderer from numbers and escaped names
}

type runPage struct {
	Title       string
	Run         *result.Run
	Expected    func(result.Check) bool
	Passed      int
	Journeys    []journeyRow
	History     string
	HistoryNote string
	Charts      []renderedChart
	Topology    template.HTML
	Generated   string
}

// OnLoad writes an instant of the run's clock counted from load start, the clock of the
// scenario file and of every chart.
func (p runPage) OnLoad(d result.Duration) string { return formatDur(onLoadClock(p.Run, d)) }

type journeyRow struct {
	Name string
	J    result.Journey
}

// HTML writes one self-contained page for a run: verdict, every check with its figure,
// faults, load, the scenario's own description, the topology with faulted links marked, and
// charts over time (latency percentiles, throughput and error rate per journey, breaker
// state per dependency, outbox backlog and consumer lag with the convergence moment), every
// time chart with the fault windows shaded and named. Nothing on the page references the
// network, so it opens from a CI artifact or a laptop offline.
//
// historyPath "" uses the history the run names; a run without one gets the page without
// charts. The history is read once, in memory bounded by the run's duration.
func HTML(ctx context.Context, w io.Writer, run *result.Run, historyPath string, opts ...Option) error {
	if run == nil {
		return fmt.Errorf("render html: run is nil")
	}
	o := buildOptions(opts)
	if historyPath == "" {
		historyPath = historyOf(run)
	}
	page := runPage{Title: o.title, Run: run, History: historyPath, Generated: time.Now().UTC().Format(time.RFC3339)}
	if page.Title == "" {
		page.Title = run.Scenario + " — " + statusWord(run.Verdict)
	}
	page.Expected = func(c result.Check) bool { return expectedFailureOf(run, c) }
	for _, c := range run.Checks {
		if c.Passed {
			page.Passed++
		}
	}
	for name, j := range run.Load.Journeys {
		page.Journeys = append(page.Journeys, journeyRow{Name: name, J: j})
	}
	slices.SortFunc(page.Journeys, func(a, b journeyRow) int { return strings.Compare(a.Name, b.Name) })

	agg := newAggregator(o.bucket)
	if historyPath != "" {
		if err := agg.addFile(ctx, historyPath, loadStartOf(run)); err != nil {
			return fmt.Errorf("render html: %w", err)
		}
	} else {
		page.HistoryNote = "The run names no history file, so there are no charts over time."
	}
	tl := agg.finish(run, 1)
	if tl.BadLines > 0 {
		page.HistoryNote = fmt.Sprintf("%d history lines could not be read and were skipped (a run killed mid-write leaves a truncated last line).", tl.BadLines)
	}
	if historyPath != "" {
		charts, err := runCharts(tl, run)
		if err != nil {
			return fmt.Errorf("render html: %w", err)
		}
		page.Charts = charts
	}
	page.Topology = template.HTML(topologySVG(run, tl.Faults))

	bw := bufio.NewWriterSize(w, 64<<10)
	if err := runTmpl.Execute(bw, page); err != nil {
		return fmt.Errorf("render html: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write html: %w", err)
	}
	return nil
}

// runCharts builds every chart of one run's page.
func runCharts(tl *timeline, run *result.Run) ([]renderedChart, error) {
	base := chart{Bucket: tl.Bucket, End: tl.End, Faults: tl.Faults}
	var specs []chart
	var notes []renderedChart
	if tl.Requests == 0 {
		notes = append(notes, renderedChart{ID: "requests", Title: "Requests over time", Note: "The history holds no requests."})
	} else {
		lat := base
		lat.ID, lat.Title, lat.YLabel = "latency", "Latency percentiles (all journeys)", "ms"
		for i, l := range tl.Latency {
			lat.Series = append(lat.Series, series{line: l, color: i})
		}
		specs = append(specs, lat)

		tp := base
		tp.ID, tp.Title, tp.YLabel = "throughput", "Throughput per journey", "requests/s"
		for i, l := range tl.Throughput {
			tp.Series = append(tp.Series, series{line: l, color: i})
		}
		specs = append(specs, tp)

		er := base
		er.ID, er.Title, er.YLabel = "errors", "Error rate per journey", "% of requests"
		for i, l := range tl.ErrorRate {
			er.Series = append(er.Series, series{line: l, color: i})
		}
		er.YMax = maxOf(er.Series, 1) * 1.15
		specs = append(specs, er)

		if hasNonZero(tl.Fallbacks) {
			fb := base
			fb.ID, fb.Title, fb.YLabel = "fallbacks", "Fallback answers per journey", "answers/s"
			for i, l := range tl.Fallbacks {
				fb.Series = append(fb.Series, series{line: l, color: i})
			}
			specs = append(specs, fb)
		}
	}
	if len(tl.Breakers) == 0 {
		notes = append(notes, renderedChart{ID: "breakers", Title: "Circuit breakers", Note: "No breaker metrics were recorded: the design has no breaker, or its components were not scraped."})
	} else {
		br := base
		br.ID, br.Title, br.YLabel = "breakers", "Circuit breaker state per dependency", "state"
		for i, l := range tl.Breakers {
			br.Series = append(br.Series, series{line: l, color: i, step: true})
		}
		br.YMin, br.YMax = -0.2, 2.6
		br.YTicks = []plot.Tick{{Value: checks.BreakerClosed, Label: checks.BreakerStateName(checks.BreakerClosed)}, {Value: checks.BreakerHalfOpen, Label: checks.BreakerStateName(checks.BreakerHalfOpen)}, {Value: checks.BreakerOpen, Label: checks.BreakerStateName(checks.BreakerOpen)}}
		specs = append(specs, br)
	}
	if len(tl.Backlog) == 0 {
		notes = append(notes, renderedChart{ID: "convergence", Title: "Consistency convergence", Note: "No outbox backlog or consumer lag was recorded."})
	} else {
		cv := base
		cv.ID, cv.Title, cv.YLabel = "convergence", "Consistency convergence: outbox backlog and consumer lag", "messages"
		for i, l := range tl.Backlog {
			cv.Series = append(cv.Series, series{line: l, color: i, step: true})
		}
		verdict, at, ok := convergenceVerdict(run, tl)
		cv.Title += verdict
		switch {
		case ok:
			cv.Markers = []marker{{at: at, label: "converged at " + formatDur(at)}}
		case tl.Converged:
			// What the series show, not a verdict: the checks above judge consistency.
			cv.Markers = []marker{{at: tl.Convergence, label: "drained at " + formatDur(tl.Convergence)}}
		}
		specs = append(specs, cv)
	}
	out := make([]renderedChart, 0, len(specs)+len(notes))
	for _, s := range specs {
		svg, err := s.render()
		if err != nil {
			return nil, err
		}
		out = append(out, renderedChart{ID: s.ID, Title: s.Title, SVG: template.HTML(svg)})
	}
	return append(out, notes...), nil
}

func hasNonZero(ls []line) bool {
	for _, l := range ls {
		for _, v := range l.Y {
			if v != 0 && !math.IsNaN(v) {
				return true
			}
		}
	}
	return false
}

// maxOf is the largest value of any series, at least floor.
func maxOf(ss []series, floor float64) float64 {
	m := floor
	for _, s := range ss {
		for _, v := range s.Y {
			if !math.IsNaN(v) && v > m {
				m = v
			}
		}
	}
	return m
}

// convergenceVerdict states in the convergence chart's title what the run's consistency
// checks concluded, the same checks its verdict comes from, so that the chart never says
// "did not converge" beside checks that passed (the backlog and lag series are sampled,
// and their last sample can catch a message in flight). With a converge_within check it
// also gives the moment of convergence, from load start, for the marker. A run without
// consistency checks gets no claim.
func convergenceVerdict(run *result.Run, tl *timeline) (title string, at time.Duration, ok bool) {
	if run == nil {
		return "", 0, false
	}
	var passed int
	var failed []string
	converge := math.NaN() // converge_within's figure: seconds after the last heal, -1 never
	for _, c := range run.Checks {
		if c.Kind != "consistency" || c.Skipped {
			continue
		}
		switch {
		case strings.HasSuffix(c.Name, "/converge_within"):
			converge = c.Figure
		case c.Passed:
			passed++
		default:
			failed = append(failed, c.Name)
		}
	}
	if converge >= 0 {
		after := time.Duration(converge * float64(time.Second))
		at, ok = convergenceRef(run, tl)+after, true
		title = fmt.Sprintf(" (converged %s after the last heal)", formatDur(after))
	}
	switch {
	case converge < 0:
		return " (did not converge)", 0, false
	case len(failed) > 0:
		return " (inconsistent at the end: " + strings.Join(failed, ", ") + " failed)", at, ok
	case ok:
		return title, at, ok
	case passed == 1:
		return " (consistent at the end: 1 consistency check passed)", 0, false
	case passed > 1:
		return fmt.Sprintf(" (consistent at the end: %d consistency checks passed)", passed), 0, false
	}
	return "", 0, false
}

// convergenceRef is what converge_within counts from, from load start: the last heal, or
// the end of the load in a run without faults.
func convergenceRef(run *result.Run, tl *timeline) time.Duration {
	var last time.Duration
	for _, f := range tl.Faults {
		last = max(last, f.End)
	}
	if last > 0 {
		return last
	}
	for _, p := range run.Phases {
		if p.Name == "overall" {
			return onLoadClock(run, p.End)
		}
	}
	return 0
}
