package explore

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Cell outcomes beside a trial's: a kind that does not apply to the target, and a
// candidate the budget left.
const (
	NotApplicable = "n/a"
	NotTried      = "not tried"
)

// Cell is one target × kind of the matrix: the single-fault trial's outcome.
type Cell struct {
	Target  string   `json:"target"`
	Kind    string   `json:"kind"`
	Outcome string   `json:"outcome"`
	Broke   []string `json:"broke,omitempty"` // "name: figure op bound unit"
	Reason  string   `json:"reason,omitempty"`
	Trial   int      `json:"trial,omitempty"`
	Repro   string   `json:"repro,omitempty"`
	// Verified says the failure's minimal scenario failed again when run alone.
	Verified bool `json:"verified,omitempty"`
}

// Matrix is the single-fault outcomes, one row per target and one column per kind.
type Matrix struct {
	Targets []string `json:"targets"`
	Kinds   []string `json:"kinds"`
	Rows    [][]Cell `json:"rows"`
}

// Matrix builds the target × kind matrix from the single-fault trials.
func (r *Report) Matrix() Matrix {
	m := Matrix{}
	kinds := r.searchedKinds()
	m.Kinds = kinds
	byKey := map[string]Trial{}
	for _, t := range r.Trials {
		if len(t.Faults) == 1 {
			byKey[t.Faults[0].Key()] = t
		}
	}
	for _, tg := range r.Targets {
		m.Targets = append(m.Targets, tg.Name)
		row := make([]Cell, len(kinds))
		for j, k := range kinds {
			c := Cell{Target: tg.Name, Kind: k}
			switch t, ok := byKey[Candidate{Kind: k, Target: tg}.Key()]; {
			case kindRules[k].target != tg.Kind:
				c.Outcome = NotApplicable
			case !ok:
				c.Outcome = NotTried
			default:
				c.Outcome, c.Reason, c.Trial = t.Outcome, t.Reason, t.N
				for _, b := range t.Broke {
					c.Broke = append(c.Broke, b.Name+": "+figure(b))
				}
				if t.Repro != nil {
					c.Repro, c.Verified = t.Repro.File, t.Repro.Verified
				}
			}
			row[j] = c
		}
		m.Rows = append(m.Rows, row)
	}
	return m
}

// searchedKinds are the requested kinds explore could aim, in their order.
func (r *Report) searchedKinds() []string {
	var out []string
	for _, k := range r.Kinds {
		if _, ok := kindRules[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// Pairs are the depth-2 trials.
func (r *Report) Pairs() []Trial {
	var out []Trial
	for _, t := range r.Trials {
		if len(t.Faults) == 2 {
			out = append(out, t)
		}
	}
	return out
}

// reportJSON is the report with its matrix, as written to ReportJSON.
type reportJSON struct {
	*Report
	Matrix Matrix `json:"matrix"`
}

// Write writes the report as JSON, Markdown and an HTML heat map into dir.
func (r *Report) Write(dir string) error {
	b, err := json.MarshalIndent(reportJSON{Report: r, Matrix: r.Matrix()}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode explore report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ReportJSON), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write explore report: %w", err)
	}
	var md strings.Builder
	r.WriteMarkdown(&md)
	if err := os.WriteFile(filepath.Join(dir, ReportMarkdown), []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("write explore report: %w", err)
	}
	var h strings.Builder
	if err := r.WriteHTML(&h); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ReportHTML), []byte(h.String()), 0o644); err != nil {
		return fmt.Errorf("write explore report: %w", err)
	}
	return nil
}

// Summary is the closing lines: trials per minute, coverage, outcomes and each failure
// with its minimal scenario.
func (r *Report) Summary() string { return r.headline() + r.failureLines() }

// headline is the summary's first lines: trials per minute, coverage and outcomes.
func (r *Report) headline() string {
	var b strings.Builder
	c := r.Coverage
	fmt.Fprintf(&b, "explore %s (design %s, depth %d): %d trials in %s, %.1f trials/min; %d restart(s)\n",
		r.Scenario, r.Design, r.Depth, len(r.Trials), r.Search.Round(time.Second), r.TrialsPerMinute, r.Restarts)
	fmt.Fprintf(&b, "coverage: %d targets × %d kinds = %d single faults, %d tried, %d not tried (budget %s%s); %d pairs tried of %d; %d targets pruned (no traffic), %d kinds skipped\n",
		c.Targets, c.Kinds, c.Cells, c.TriedSingles, c.NotTried, r.Budget, map[bool]string{true: ", spent", false: ""}[r.BudgetSpent],
		c.TriedPairs, c.PairsPlanned, len(c.Pruned), len(c.Skipped))
	counts := map[string]int{}
	for _, t := range r.Trials {
		counts[t.Outcome]++
	}
	fmt.Fprintf(&b, "outcomes: %d passed, %d failed, %d invalid, %d error\n", counts[Passed], counts[Failed], counts[Invalid], counts[Error])
	return b.String()
}

// failureLines are the failures, one each with its minimal scenario's outcome.
func (r *Report) failureLines() string {
	var b strings.Builder
	for _, t := range r.Failures() {
		fmt.Fprintf(&b, "FAILURE %s: %s", t.Key(), describe(t))
		if t.Repro != nil {
			fmt.Fprintf(&b, "\n  minimal scenario %s: %s", t.Repro.File, reproLine(*t.Repro))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// WriteMarkdown writes the report as Markdown: the summary, the matrix, the pairs, the
// failures with their figures and minimal scenarios, and what was pruned or skipped.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "# explore %s\n\n```\n%s```\n\n", r.Scenario, r.headline())
	m := r.Matrix()
	fmt.Fprintf(w, "## Single faults (target × kind)\n\n| target |")
	for _, k := range m.Kinds {
		fmt.Fprintf(w, " %s |", k)
	}
	fmt.Fprint(w, "\n|---|")
	for range m.Kinds {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for i, row := range m.Rows {
		fmt.Fprintf(w, "| `%s` |", m.Targets[i])
		for _, c := range row {
			fmt.Fprintf(w, " %s |", mdCell(c))
		}
		fmt.Fprintln(w)
	}
	if pairs := r.Pairs(); len(pairs) > 0 {
		fmt.Fprintf(w, "\n## Pairs\n\n| faults | outcome |\n|---|---|\n")
		for _, t := range pairs {
			fmt.Fprintf(w, "| %s | %s |\n", t.Key(), mdEscape(describe(t)))
		}
	}
	if fails := r.Failures(); len(fails) > 0 {
		fmt.Fprintf(w, "\n## Failures\n\n")
		for _, t := range fails {
			fmt.Fprintf(w, "### %s\n\n", t.Key())
			for _, b := range t.Broke {
				fmt.Fprintf(w, "- `%s` (%s): %s — %s\n", b.Name, b.Phase, figure(b), mdEscape(b.Message))
			}
			if t.Repro != nil {
				fmt.Fprintf(w, "\nMinimal scenario: `%s` — %s\n", t.Repro.File, reproLine(*t.Repro))
			}
			fmt.Fprintf(w, "\nTrial run: `%s`\n\n", t.RunDir)
		}
	}
	c := r.Coverage
	if len(c.Pruned)+len(c.Skipped) > 0 {
		fmt.Fprintf(w, "\n## Pruned and skipped\n\n")
		for _, s := range append(append([]Skip(nil), c.Pruned...), c.Skipped...) {
			fmt.Fprintf(w, "- %s: %s\n", s.What, s.Reason)
		}
	}
}

func mdCell(c Cell) string {
	switch c.Outcome {
	case Failed:
		s := "**FAILED** " + mdEscape(strings.Join(c.Broke, "; "))
		switch {
		case c.Verified:
			s += " (reproduced)"
		case c.Repro != "":
			s += " (not reproduced alone)"
		}
		return s
	case Invalid, Error:
		return c.Outcome + ": " + mdEscape(c.Reason)
	}
	return c.Outcome
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// htmlPage is the heat map: no script, no external resource, so the file opens anywhere.
var htmlPage = template.Must(template.New("explore").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>explore {{.R.Scenario}}</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.35em .5em;vertical-align:top;max-width:22em}
th{background:#f3f3f3}td.passed{background:#c8e6c9}td.failed{background:#ef9a9a}
td.invalid,td.error{background:#ffe082}td.na{background:#fafafa;color:#aaa}td.nottried{background:#e0e0e0;color:#666}
pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}small{color:#555}
</style></head><body>
<h1>explore {{.R.Scenario}}</h1>
<pre>{{.Headline}}</pre>
<h2>Single faults: target × kind</h2>
<table><tr><th>target</th>{{range .M.Kinds}}<th>{{.}}</th>{{end}}</tr>
{{range $i, $row := .M.Rows}}<tr><th><code>{{index $.M.Targets $i}}</code></th>{{range $row}}<td class="{{$.Class .Outcome}}" title="{{.Reason}}">{{.Outcome}}{{if .Broke}}<br><small>{{range .Broke}}{{.}}<br>{{end}}</small>{{end}}{{if .Repro}}<small>{{if .Verified}}reproduced{{else}}not reproduced alone{{end}}</small>{{end}}</td>{{end}}</tr>
{{end}}</table>
{{if .Pairs}}<h2>Pairs</h2><table><tr><th>faults</th><th>outcome</th></tr>
{{range .Pairs}}<tr><td>{{.Key}}</td><td class="{{$.Class .Outcome}}">{{$.Describe .}}</td></tr>{{end}}</table>{{end}}
{{if .Failures}}<h2>Failures and their minimal scenarios</h2><pre>{{.Failures}}</pre>{{end}}
</body></html>
`))

// htmlData feeds the heat map.
type htmlData struct {
	R        *Report
	M        Matrix
	Headline string
	Failures string
	Pairs    []Trial
}

// Class is a cell's CSS class.
func (htmlData) Class(outcome string) string {
	switch outcome {
	case NotApplicable:
		return "na"
	case NotTried:
		return "nottried"
	}
	return outcome
}

// Describe is a trial's outcome in one line.
func (htmlData) Describe(t Trial) string { return describe(t) }

// WriteHTML writes the matrix as a self-contained HTML heat map.
func (r *Report) WriteHTML(w io.Writer) error {
	if err := htmlPage.Execute(w, htmlData{R: r, M: r.Matrix(), Headline: r.headline(), Failures: r.failureLines(), Pairs: r.Pairs()}); err != nil {
		return fmt.Errorf("render explore heat map: %w", err)
	}
	return nil
}
