package reports

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/result"
)

// figureStat summarises one check's figure over a design's repeats.
type figureStat struct {
	N, Passed, Skipped, Runs int
	// Never counts the repeats whose moment never came (result.Check.Never): they have no
	// figure, so they stay out of the mean and rank the design below one where it came.
	Never          int
	Mean, Min, Max float64
	Unit           string
}

// compareRow is one check across every design.
type compareRow struct {
	Name, Kind, Phase string
	Op                string
	Threshold         float64
	Unit              string
	Stats             []*figureStat // per design, nil when the design has no such check
	Winner            int           // index of the winning design, -1 for none
	Noise             bool          // the winner's spread overlaps the runner-up's
	Why               string        // how the winner was chosen, or why there is none
}

// comparison is everything both comparison formats show.
type comparison struct {
	Designs  []designSummary
	Rows     []compareRow
	Scenario string
}

type designSummary struct {
	Name     string
	Repeats  int
	Verdicts string // "2 passed, 1 failed"
	Rate     figureStat
	Errors   figureStat // error ratio
}

func compare(groups []result.DesignRuns) (*comparison, error) {
	if len(groups) == 0 {
		return nil, fmt.Errorf("compare designs: no designs")
	}
	cmp := &comparison{}
	index := map[string]int{}
	for gi, g := range groups {
		ds := designSummary{Name: g.Design, Repeats: len(g.Runs)}
		if ds.Name == "" {
			ds.Name = fmt.Sprintf("design %d", gi+1)
		}
		counts := map[result.Verdict]int{}
		var order []result.Verdict
		var rates, errs []float64
		for ri, r := range g.Runs {
			if r == nil {
				return nil, fmt.Errorf("compare designs: %s run %d is nil", ds.Name, ri)
			}
			if cmp.Scenario == "" {
				cmp.Scenario = r.Scenario
			}
			if counts[r.Verdict] == 0 {
				order = append(order, r.Verdict)
			}
			counts[r.Verdict]++
			rates = append(rates, r.Load.AchievedRate)
			if r.Load.Requests > 0 {
				errs = append(errs, float64(r.Load.Errors)/float64(r.Load.Requests))
			}
			for _, c := range r.Checks {
				i, ok := index[c.Name]
				if !ok {
					i = len(cmp.Rows)
					index[c.Name] = i
					cmp.Rows = append(cmp.Rows, compareRow{Name: c.Name, Kind: c.Kind, Phase: c.Phase, Op: c.Op,
						Threshold: c.Threshold, Unit: c.Unit, Stats: make([]*figureStat, len(groups))})
				}
				st := cmp.Rows[i].Stats[gi]
				if st == nil {
					st = &figureStat{Unit: c.Unit, Min: math.Inf(1), Max: math.Inf(-1)}
					cmp.Rows[i].Stats[gi] = st
				}
				st.Runs++
				switch {
				case c.Skipped:
					st.Skipped++
					continue
				case c.Passed:
					st.Passed++
				}
				if c.Never {
					st.Never++
					continue
				}
				st.N++
				st.Mean += (c.Figure - st.Mean) / float64(st.N)
				st.Min, st.Max = math.Min(st.Min, c.Figure), math.Max(st.Max, c.Figure)
			}
		}
		var vs []string
		for _, v := range order {
			vs = append(vs, fmt.Sprintf("%d %s", counts[v], v))
		}
		ds.Verdicts = strings.Join(vs, ", ")
		if ds.Verdicts == "" {
			ds.Verdicts = "no runs"
		}
		ds.Rate, ds.Errors = statOf(rates, "req/s"), statOf(errs, "ratio")
		cmp.Designs = append(cmp.Designs, ds)
	}
	for i := range cmp.Rows {
		judge(&cmp.Rows[i])
	}
	return cmp, nil
}

func statOf(vs []float64, unit string) figureStat {
	st := figureStat{Unit: unit, N: len(vs), Min: math.Inf(1), Max: math.Inf(-1)}
	for i, v := range vs {
		st.Mean += (v - st.Mean) / float64(i+1)
		st.Min, st.Max = math.Min(st.Min, v), math.Max(st.Max, v)
	}
	return st
}

// judge picks the design whose mean figure is best in the check's own direction (lower for
// an upper bound, higher for a lower bound) and marks the result as within noise when its
// min–max spread over the repeats overlaps the runner-up's: with so few repeats an
// overlap means the difference may be chance.
func judge(row *compareRow) {
	row.Winner = -1
	var better func(a, b float64) bool
	switch row.Op {
	case "<=", "<":
		better = func(a, b float64) bool { return a < b }
	case ">=", ">":
		better = func(a, b float64) bool { return a > b }
	default:
		// An equality bound has no better side: the design passing more often wins.
		best, second := -1, -1
		for i, st := range row.Stats {
			if st == nil || st.Runs == 0 {
				continue
			}
			switch {
			case best < 0 || rate(st) > rate(row.Stats[best]):
				best, second = i, best
			case second < 0 || rate(st) > rate(row.Stats[second]):
				second = i
			}
		}
		if best >= 0 && second >= 0 && rate(row.Stats[best]) > rate(row.Stats[second]) {
			row.Winner, row.Why = best, "passes more often"
		} else {
			row.Why = "no difference in passes"
		}
		return
	}
	// A repeat whose moment never came is worse than any figure: designs rank first by how
	// often that happened, then by their mean over the repeats that have a figure.
	ahead := func(a, b *figureStat) bool {
		if na, nb := neverRate(a), neverRate(b); na != nb {
			return na < nb
		}
		return a.N > 0 && b.N > 0 && better(a.Mean, b.Mean)
	}
	best, second := -1, -1
	for i, st := range row.Stats {
		if st == nil || st.N+st.Never == 0 {
			continue
		}
		switch {
		case best < 0 || ahead(st, row.Stats[best]):
			best, second = i, best
		case second < 0 || ahead(st, row.Stats[second]):
			second = i
		}
	}
	switch {
	case best < 0:
		row.Why = "no design has a figure"
	case second < 0:
		row.Why = "only one design has a figure"
	case !ahead(row.Stats[best], row.Stats[second]):
		row.Why = "tie"
	case neverRate(row.Stats[best]) < neverRate(row.Stats[second]):
		row.Winner = best
		row.Why = "never observed less often"
	default:
		row.Winner = best
		b, s := row.Stats[best], row.Stats[second]
		row.Noise = b.Min <= s.Max && s.Min <= b.Max
		row.Why = "better mean"
		if row.Noise {
			row.Why = "spreads overlap"
		}
	}
}

// neverRate is the share of a design's evaluated repeats whose moment never came.
func neverRate(st *figureStat) float64 {
	if st.N+st.Never == 0 {
		return 0
	}
	return float64(st.Never) / float64(st.N+st.Never)
}

func rate(st *figureStat) float64 {
	if st.Runs == 0 {
		return 0
	}
	return float64(st.Passed) / float64(st.Runs)
}

// statText renders "mean [min–max]" in the figure's unit; a single repeat has no spread.
func statText(st *figureStat) string {
	if st == nil {
		return "–"
	}
	if st.N == 0 {
		switch {
		case st.Never > 0:
			return "never observed"
		case st.Skipped > 0:
			return "skipped"
		}
		return "–"
	}
	s := formatValue(st.Mean, st.Unit)
	if st.N > 1 && st.Max > st.Min {
		s += " [" + formatValue(st.Min, st.Unit) + " – " + formatValue(st.Max, st.Unit) + "]"
	}
	if st.Never > 0 {
		s += fmt.Sprintf("; never observed in %d of %d", st.Never, st.N+st.Never)
	}
	return s
}

func passText(st *figureStat) string {
	if st == nil {
		return ""
	}
	return fmt.Sprintf("%d/%d passed", st.Passed, st.Runs)
}

// CompareMarkdown writes the design comparison as Markdown: per check, every design's mean
// figure with its min–max spread over the repeats, the winner, and a "within noise" mark
// where the spreads overlap.
func CompareMarkdown(w io.Writer, groups []result.DesignRuns) error {
	cmp, err := compare(groups)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	title := "Design comparison"
	if cmp.Scenario != "" {
		title += ": " + mdText(cmp.Scenario)
	}
	fmt.Fprintf(bw, "### %s\n\n| design | repeats | verdicts | achieved rate | error ratio |\n|---|---|---|---|---|\n", title)
	for _, d := range cmp.Designs {
		fmt.Fprintf(bw, "| %s | %d | %s | %s | %s |\n", cell(d.Name), d.Repeats, cell(d.Verdicts), cell(statText(&d.Rate)), cell(statText(&d.Errors)))
	}
	bw.WriteString("\n| check | bound |")
	for _, d := range cmp.Designs {
		bw.WriteString(" " + cell(d.Name) + " |")
	}
	bw.WriteString(" winner |\n|---|---|" + strings.Repeat("---|", len(cmp.Designs)) + "---|\n")
	for _, r := range cmp.Rows {
		fmt.Fprintf(bw, "| %s | %s |", cell(r.Name), cell(r.Op+" "+formatValue(r.Threshold, r.Unit)))
		for _, st := range r.Stats {
			txt := statText(st)
			if st != nil {
				txt += " (" + passText(st) + ")"
			}
			fmt.Fprintf(bw, " %s |", cell(txt))
		}
		fmt.Fprintf(bw, " %s |\n", cell(winnerText(cmp, r)))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	return nil
}

func winnerText(cmp *comparison, r compareRow) string {
	if r.Winner < 0 {
		return "none (" + r.Why + ")"
	}
	s := cmp.Designs[r.Winner].Name
	if r.Noise {
		s += " (within noise)"
	}
	return s
}

//go:embed compare.html.tmpl
var compareTmplText string

var compareTmpl = template.Must(template.New("compare").Funcs(funcs).Funcs(template.FuncMap{
	"stat":   statText,
	"passes": passText,
	"winner": winnerText,
}).Parse(compareTmplText))

type comparePage struct {
	Title     string
	Cmp       *comparison
	Charts    []renderedChart
	Notes     []string
	Generated string
}

// Compare writes one HTML page with designs side by side: every check's figure per design
// (mean and min–max spread over the repeats, a "within noise" mark when the spreads
// overlap, and the winner), and latency, error-rate and throughput charts on one time axis
// with a line per design, each design's repeats pooled. Like HTML, it opens offline.
func Compare(ctx context.Context, w io.Writer, groups []result.DesignRuns, opts ...Option) error {
	cmp, err := compare(groups)
	if err != nil {
		return err
	}
	o := buildOptions(opts)
	page := comparePage{Title: o.title, Cmp: cmp, Generated: time.Now().UTC().Format(time.RFC3339)}
	if page.Title == "" {
		page.Title = "Design comparison"
		if cmp.Scenario != "" {
			page.Title += ": " + cmp.Scenario
		}
	}
	tls := make([]*timeline, len(groups))
	var end time.Duration
	faults := compareWindows(groups)
	anyHistory := false
	for i, g := range groups {
		agg := newAggregator(o.bucket)
		for hi, h := range g.Histories {
			if err := agg.addFile(ctx, h, loadStartOf(runOfHistory(g, hi, h))); err != nil {
				return fmt.Errorf("compare designs: %s: %w", cmp.Designs[i].Name, err)
			}
			anyHistory = true
		}
		var first *result.Run
		if len(g.Runs) > 0 {
			first = g.Runs[0]
		}
		tls[i] = agg.finish(first, len(g.Histories))
		end = max(end, tls[i].End)
		if tls[i].BadLines > 0 {
			page.Notes = append(page.Notes, fmt.Sprintf("%s: %d history lines could not be read and were skipped.", cmp.Designs[i].Name, tls[i].BadLines))
		}
	}
	if anyHistory {
		charts, err := compareCharts(cmp, tls, end, faults, o.bucket)
		if err != nil {
			return fmt.Errorf("compare designs: %w", err)
		}
		page.Charts = charts
	} else {
		page.Notes = append(page.Notes, "No histories were given, so there are no charts over time.")
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := compareTmpl.Execute(bw, page); err != nil {
		return fmt.Errorf("render comparison: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	return nil
}

func compareCharts(cmp *comparison, tls []*timeline, end time.Duration, faults []faultWindow, bucket time.Duration) ([]renderedChart, error) {
	base := chart{Bucket: bucket, End: end, Faults: faults}
	lat, er, tp := base, base, base
	lat.ID, lat.Title, lat.YLabel = "compare-latency", "Latency p99 (solid) and p50 (dashed) per design", "ms"
	er.ID, er.Title, er.YLabel = "compare-errors", "Error rate per design", "% of requests"
	tp.ID, tp.Title, tp.YLabel = "compare-throughput", "Throughput per design (mean over repeats)", "requests/s"
	for i, tl := range tls {
		name := cmp.Designs[i].Name
		for _, l := range tl.Latency {
			switch l.Name {
			case "p99":
				lat.Series = append(lat.Series, series{line: line{Name: name + " p99", Y: l.Y}, color: i})
			case "p50":
				lat.Series = append(lat.Series, series{line: line{Name: name + " p50", Y: l.Y}, color: i, dashed: true})
			}
		}
		if tl.Requests > 0 {
			er.Series = append(er.Series, series{line: line{Name: name, Y: tl.AllErrors.Y}, color: i})
			tp.Series = append(tp.Series, series{line: line{Name: name, Y: tl.AllRate.Y}, color: i})
		}
	}
	er.YMax = maxOf(er.Series, 1) * 1.15
	var out []renderedChart
	for _, ch := range []chart{lat, er, tp} {
		if len(ch.Series) == 0 {
			out = append(out, renderedChart{ID: ch.ID, Title: ch.Title, Note: "The histories hold no requests."})
			continue
		}
		svg, err := ch.render()
		if err != nil {
			return nil, err
		}
		out = append(out, renderedChart{ID: ch.ID, Title: ch.Title, SVG: template.HTML(svg)})
	}
	return out, nil
}

// compareWindows returns the fault windows a comparison shades: every run's own, from its
// own load start, in its design's colour. Runs of different designs are not injected at the
// same instant, and a spike must be read against the window of the run that had it. The
// first repeat of each design names its windows; further repeats only shade theirs.
func compareWindows(groups []result.DesignRuns) []faultWindow {
	var out []faultWindow
	for gi, g := range groups {
		design := g.Design
		if design == "" {
			design = fmt.Sprintf("design %d", gi+1)
		}
		for ri, r := range g.Runs {
			for _, w := range newAggregator(time.Second).windows(r) {
				w.Color = gi + 1
				w.Name = design + ": " + w.Name
				if ri > 0 {
					w.Name = ""
				}
				out = append(out, w)
			}
		}
	}
	return out
}

// runOfHistory is the run that wrote a design's history i, whose load start the history's
// times are shifted by.
func runOfHistory(g result.DesignRuns, i int, path string) *result.Run {
	for _, r := range g.Runs {
		if r != nil && historyOf(r) == path {
			return r
		}
	}
	if len(g.Histories) == len(g.Runs) {
		return g.Runs[i]
	}
	return nil
}
