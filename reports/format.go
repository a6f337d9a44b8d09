package reports

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/result"
)

// statusWord is the verdict as one upper-case word: CI logs and PR comments are read by
// people scanning for it, and emoji render differently (or not at all) across tools.
func statusWord(v result.Verdict) string {
	switch v {
	case result.Passed, result.Failed, result.Invalid, result.Aborted, result.Error:
		return strings.ToUpper(string(v))
	}
	return "UNKNOWN"
}

// formatValue renders a figure or a threshold in its unit so a reader never has to guess
// whether 0.01 means a ratio, a second or a count.
func formatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	if math.IsInf(v, 0) {
		if v > 0 {
			return "∞"
		}
		return "-∞"
	}
	switch unit {
	case "ratio":
		return trimFloat(v*100, 3) + "%"
	case "%":
		return trimFloat(v, 3) + "%"
	case "ms":
		return trimFloat(v, 4) + " ms"
	case "s":
		return trimFloat(v, 3) + " s"
	case "count", "":
		return trimFloat(v, 6)
	}
	return trimFloat(v, 4) + " " + unit
}

// trimFloat prints v with at most sig significant digits and no exponent for everyday
// magnitudes.
func trimFloat(v float64, sig int) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e12 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	s := strconv.FormatFloat(v, 'g', sig, 64)
	if strings.ContainsAny(s, "eE") {
		if f, err := strconv.ParseFloat(s, 64); err == nil && math.Abs(f) >= 1e-4 && math.Abs(f) < 1e12 {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
	}
	return s
}

// bound renders a check's threshold with its operator ("<= 1%").
func bound(c result.Check) string {
	op := c.Op
	if op == "" {
		op = "vs"
	}
	return op + " " + formatValue(c.Threshold, c.Unit)
}

// figureText is a check's figure in its unit; a skipped check has none, and neither has
// one whose awaited moment never came.
func figureText(c result.Check) string {
	switch {
	case c.Skipped:
		return "n/a"
	case c.Never:
		return "never observed"
	}
	return formatValue(c.Figure, c.Unit)
}

// figureVsBound is the one-line comparison JUnit puts in a failure message; a check that
// was not evaluated has nothing to compare.
func figureVsBound(c result.Check) string {
	if c.Skipped {
		return "not evaluated"
	}
	return fmt.Sprintf("%s vs %s", figureText(c), bound(c))
}

// formatDur prints a duration rounded for people: 1.52s, 300ms.
func formatDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	}
	return d.String()
}

// effectText renders one side of a fault's effect.
func effectText(v float64, unit string) string {
	switch unit {
	case "s":
		return formatDur(time.Duration(v * float64(time.Second)))
	case "ms":
		return formatDur(time.Duration(v * float64(time.Millisecond)))
	}
	return formatValue(v, unit)
}

// checkMark is the pass/fail glyph tables use; skipped checks are neither.
func checkMark(c result.Check) string {
	switch {
	case c.Skipped:
		return "–"
	case c.Passed:
		return "✓"
	}
	return "✗"
}

// expectedFailureOf reports whether c is the check a weak-design scenario expects to fail.
// The verdict's rule names the results that belong to the check (Results); a result.json
// written before it did is matched by the check's own name.
func expectedFailureOf(r *result.Run, c result.Check) bool {
	ef := r.ExpectedFailure
	switch {
	case ef == nil:
		return false
	case ef.Results != nil:
		return slices.Contains(ef.Results, c.Name)
	default:
		return ef.Check == c.Name
	}
}

// phaseSpan returns how long the named phase lasted, for JUnit's per-test time.
func phaseSpan(r *result.Run, name string) time.Duration {
	for _, p := range r.Phases {
		if p.Name == name {
			return p.End.Std() - p.Start.Std()
		}
	}
	if name == "overall" {
		return r.Duration.Std()
	}
	return 0
}

// historyOf resolves the run's history path: relative paths are relative to RunDir.
func historyOf(r *result.Run) string {
	if r == nil || r.History == "" {
		return ""
	}
	if filepath.IsAbs(r.History) || r.RunDir == "" {
		return r.History
	}
	return filepath.Join(r.RunDir, r.History)
}

// loadStartOf is when the run's load began on the run's own clock (the clock of its
// history, phases and injection times). Every time a report shows has it subtracted, so
// that times count from load start as the scenario's at: does. A result written before
// the run recorded it falls back on the start of its overall phase, which is the load's.
func loadStartOf(r *result.Run) time.Duration {
	if r == nil {
		return 0
	}
	if r.LoadStart > 0 {
		return r.LoadStart.Std()
	}
	for _, p := range r.Phases {
		if p.Name == "overall" {
			return p.Start.Std()
		}
	}
	return 0
}

// onLoadClock turns an instant on the run's clock into one from load start.
func onLoadClock(r *result.Run, d result.Duration) time.Duration {
	return d.Std() - loadStartOf(r)
}
