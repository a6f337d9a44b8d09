package reports

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/faultline-dev/faultline/result"
)

// Markdown writes a summary of runs fit for a pull-request comment: a verdict line with a
// plain status word, the checks with figure, bound and phase, the faults with configured
// against measured effect, the load achieved against planned, and where the full HTML
// report and the history live. Several runs (a suite) get an overview table first.
func Markdown(w io.Writer, runs ...*result.Run) error {
	links := make([]string, len(runs))
	for i, r := range runs {
		if r != nil && r.RunDir != "" {
			links[i] = filepath.Join(r.RunDir, "report.html")
		}
	}
	return markdown(w, runs, links)
}

// markdown writes the summary with an explicit HTML report location per run.
func markdown(w io.Writer, runs []*result.Run, htmlPaths []string) error {
	bw := bufio.NewWriter(w)
	for i, r := range runs {
		if r == nil {
			return fmt.Errorf("write markdown: run %d is nil", i)
		}
	}
	if len(runs) != 1 {
		suiteOverview(bw, runs)
	}
	level := "###"
	if len(runs) != 1 {
		level = "####"
	}
	for i, r := range runs {
		if i > 0 || len(runs) != 1 {
			bw.WriteString("\n")
		}
		runMarkdown(bw, r, level, htmlPaths[i])
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

func suiteOverview(w *bufio.Writer, runs []*result.Run) {
	vs := make([]result.Verdict, len(runs))
	for i, r := range runs {
		vs[i] = r.Verdict
	}
	fmt.Fprintf(w, "## Faultline: %s (%d scenarios)\n\n", statusWord(result.Worst(vs...)), len(runs))
	if len(runs) == 0 {
		w.WriteString("No runs.\n")
		return
	}
	w.WriteString("| scenario | verdict | checks passed | reason |\n|---|---|---|---|\n")
	for _, r := range runs {
		passed := 0
		for _, c := range r.Checks {
			if c.Passed {
				passed++
			}
		}
		fmt.Fprintf(w, "| %s | %s | %d/%d | %s |\n", cell(r.Scenario), verdictWords(r), passed, len(r.Checks), cell(r.Reason))
	}
}

// verdictWords is the status word plus, for a weak-design scenario, whether its expected
// failure was seen: "PASSED" alone would hide that the run demonstrates a failure.
func verdictWords(r *result.Run) string {
	s := statusWord(r.Verdict)
	if ef := r.ExpectedFailure; ef != nil {
		if ef.Observed {
			s += " (expected failure observed)"
		} else {
			s += " (expected failure not observed)"
		}
	}
	return s
}

func runMarkdown(w *bufio.Writer, r *result.Run, level, htmlPath string) {
	fmt.Fprintf(w, "%s %s: %s\n\n", level, mdText(r.Scenario), verdictWords(r))
	fmt.Fprintf(w, "**Verdict: %s**", statusWord(r.Verdict))
	if r.Reason != "" {
		fmt.Fprintf(w, " — %s", mdText(r.Reason))
	}
	w.WriteString("\n")
	if r.Hint != "" {
		fmt.Fprintf(w, "Hint: %s\n", mdText(r.Hint))
	}
	var facts []string
	if r.Design != "" {
		facts = append(facts, "design `"+code(r.Design)+"`")
	}
	if r.Runtime != "" {
		facts = append(facts, "runtime "+mdText(r.Runtime))
	}
	facts = append(facts, fmt.Sprintf("seed %d", r.Seed), "duration "+formatDur(r.Duration.Std()))
	if !r.StartedAt.IsZero() {
		facts = append(facts, "started "+r.StartedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	fmt.Fprintf(w, "\n%s\n", strings.Join(facts, " · "))
	if ef := r.ExpectedFailure; ef != nil {
		seen := "observed"
		if !ef.Observed {
			seen = "NOT observed"
		}
		fmt.Fprintf(w, "\n> Expected failure (%s): check `%s` must fail — %s\n", seen, code(ef.Check), mdText(ef.Reason))
	}

	passed := 0
	for _, c := range r.Checks {
		if c.Passed {
			passed++
		}
	}
	fmt.Fprintf(w, "\n**Checks** (%d of %d passed)\n\n", passed, len(r.Checks))
	if len(r.Checks) == 0 {
		w.WriteString("No checks were evaluated.\n")
	} else {
		w.WriteString("| | check | phase | figure | bound | message |\n|---|---|---|---|---|---|\n")
		for _, c := range r.Checks {
			mark := checkMark(c)
			if expectedFailureOf(r, c) {
				mark += " (expected)"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", mark, cell(c.Name), cell(c.Phase),
				cell(figureText(c)), cell(bound(c)), cell(c.Message))
		}
	}

	if len(r.Faults) > 0 {
		w.WriteString("\n**Faults**\n\n| fault | type | targets | window | configured | measured | landed |\n|---|---|---|---|---|---|---|\n")
		for _, f := range r.Faults {
			conf, meas, landed := "–", "–", "unknown"
			if e := f.Effect; e != nil {
				conf, meas = effectText(e.Configured, e.Unit), effectText(e.Measured, e.Unit)
				landed = "no"
				if e.Landed {
					landed = "yes"
				}
				if e.Detail != "" {
					meas += " (" + e.Detail + ")"
				}
			}
			window := formatDur(onLoadClock(r, f.Injected)) + " – "
			if f.Injected == 0 {
				window = "not injected (planned at " + formatDur(f.At.Std()) + ") – "
			}
			if f.Healed > 0 {
				window += formatDur(onLoadClock(r, f.Healed))
			} else {
				window += "never healed"
			}
			if f.HealError != "" {
				window += " (heal error: " + f.HealError + ")"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", cell(f.Name), cell(f.Type), cell(strings.Join(f.Targets, ", ")),
				cell(window), cell(conf), cell(meas), landed)
		}
	}

	l := r.Load
	w.WriteString("\n**Load**: ")
	if l.PlannedRate > 0 {
		fmt.Fprintf(w, "achieved %s req/s of %s planned (%s)", trimFloat(l.AchievedRate, 4), trimFloat(l.PlannedRate, 4),
			formatValue(l.AchievedRate/l.PlannedRate, "ratio"))
	} else {
		fmt.Fprintf(w, "achieved %s req/s (no planned rate)", trimFloat(l.AchievedRate, 4))
	}
	errRate := "n/a"
	if l.Requests > 0 {
		errRate = formatValue(float64(l.Errors)/float64(l.Requests), "ratio")
	}
	fmt.Fprintf(w, "; %d requests, %d errors (%s)\n", l.Requests, l.Errors, errRate)
	if len(l.Journeys) > 0 {
		w.WriteString("\n| journey | requests | errors | p50 | p95 | p99 |\n|---|---|---|---|---|---|\n")
		names := make([]string, 0, len(l.Journeys))
		for n := range l.Journeys {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			j := l.Journeys[n]
			fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s |\n", cell(n), j.Requests, j.Errors,
				formatDur(j.P50.Std()), formatDur(j.P95.Std()), formatDur(j.P99.Std()))
		}
	}

	var where []string
	if htmlPath != "" {
		where = append(where, "full report with charts: `"+code(htmlPath)+"`")
	}
	if h := historyOf(r); h != "" {
		where = append(where, "history: `"+code(h)+"`")
	}
	if len(where) > 0 {
		fmt.Fprintf(w, "\n%s\n", capitalise(strings.Join(where, " · ")))
	}
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// cell makes text safe inside a Markdown table cell: one line, pipes escaped.
func cell(s string) string {
	s = mdText(s)
	return strings.ReplaceAll(s, "|", `\|`)
}

// mdText flattens text to one line and neutralises HTML, which GitHub would otherwise
// render from a scenario's description or an error message.
func mdText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return htmlStart.ReplaceAllString(s, "&lt;$1")
}

// htmlStart matches what GitHub would take for the start of a tag or comment; a lone "<"
// as in "<= 1%" stays readable.
var htmlStart = regexp.MustCompile(`<([A-Za-z/!?])`)

// code makes text safe inside an inline code span.
func code(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "`", "'")
}
