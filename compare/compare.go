// Package compare runs one scenario against several designs of the system, with the same
// seeded load and fault schedule, and returns each design's runs: the data a comparison
// report (package reports) renders.
package compare

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/systems"
)

// MaxRepeat bounds --repeat: every repeat of every design starts a whole system.
const MaxRepeat = 20

// Variant is one design of a comparison: the label its figures are shown under and the
// scenario run for it. Variants of one comparison differ only in their design.
type Variant struct {
	Name     string
	Scenario *scenarios.Scenario
}

// Variants expands a scenario's compare list into one scenario per design, identical but
// for system.design. Each variant's expect_failure is dropped: in a comparison which design
// fails is the finding, so every design's verdict is the plain verdict of its checks.
func Variants(sc *scenarios.Scenario) ([]Variant, error) {
	if sc == nil {
		return nil, errors.New("expand designs: no scenario")
	}
	if len(sc.Compare) < 2 {
		return nil, fmt.Errorf("expand designs: %s lists %d design(s) under compare; a comparison needs two or more", sc.File, len(sc.Compare))
	}
	out := make([]Variant, 0, len(sc.Compare))
	for _, d := range sc.Compare {
		cp := *sc
		cp.System.Design = d.Design
		cp.Compare, cp.ExpectFailure = nil, nil
		out = append(out, Variant{Name: d.Name, Scenario: &cp})
	}
	return out, nil
}

// VariantsOf builds a comparison from scenario files written as a pair (such as
// cascading-failure-no-breaker and cascading-failure-with-breaker): they must share the
// seed, the system apart from its design, the load and the fault timeline, so that only the
// design differs; their checks may differ and are compared where they share a name. Each
// variant is named after its scenario with the name the files share removed ("no-breaker",
// "with-breaker"), and its expect_failure is dropped as in Variants.
func VariantsOf(scs ...*scenarios.Scenario) ([]Variant, error) {
	if len(scs) < 2 {
		return nil, fmt.Errorf("compare scenarios: %d given, a comparison needs two or more", len(scs))
	}
	for i, sc := range scs {
		if sc == nil {
			return nil, fmt.Errorf("compare scenarios: scenario %d is nil", i)
		}
	}
	first := scs[0]
	names := make([]string, len(scs))
	for i, sc := range scs {
		names[i] = sc.Name
		if i == 0 {
			continue
		}
		if why := sameRun(first, sc); why != "" {
			return nil, fmt.Errorf("compare scenarios: %s and %s differ in %s; only the design may differ", first.File, sc.File, why)
		}
	}
	labels := distinctLabels(names)
	out := make([]Variant, 0, len(scs))
	seen := map[string]bool{}
	for i, sc := range scs {
		if seen[labels[i]] {
			return nil, fmt.Errorf("compare scenarios: %s is given twice", sc.Name)
		}
		seen[labels[i]] = true
		cp := *sc
		cp.Compare, cp.ExpectFailure = nil, nil
		out = append(out, Variant{Name: labels[i], Scenario: &cp})
	}
	return out, nil
}

// sameRun names what differs between a and b besides the design and the checks, or "".
func sameRun(a, b *scenarios.Scenario) string {
	sa, sb := a.System, b.System
	sa.Design, sb.Design = scenarios.DesignRef{}, scenarios.DesignRef{}
	switch {
	case a.Seed != b.Seed:
		return "seed"
	case !reflect.DeepEqual(sa, sb):
		return "system"
	case !reflect.DeepEqual(a.Load, b.Load):
		return "load"
	case len(a.Faults) != len(b.Faults):
		return "faults"
	}
	for i := range a.Faults {
		fa, fb := a.Faults[i], b.Faults[i]
		if fa.Name != fb.Name || fa.Type != fb.Type || fa.At != fb.At || fa.For != fb.For || !reflect.DeepEqual(fa.Spec, fb.Spec) {
			return "faults[" + strconv.Itoa(i) + "]"
		}
	}
	return ""
}

// distinctLabels removes the dash-separated words every name starts with, so that
// "cascading-failure-no-breaker" and "cascading-failure-with-breaker" become "no-breaker"
// and "with-breaker"; a name left empty keeps its full form.
func distinctLabels(names []string) []string {
	split := make([][]string, len(names))
	common := -1
	for i, n := range names {
		split[i] = strings.Split(n, "-")
		if common < 0 {
			common = len(split[i])
		}
		j := 0
		for j < common && j < len(split[i]) && split[i][j] == split[0][j] {
			j++
		}
		common = j
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.Join(split[i][min(common, len(split[i])):], "-")
		if out[i] == "" {
			out[i] = n
		}
	}
	return out
}

// Option configures Run.
type Option func(*options)

type options struct {
	repeat  int
	dir     string
	runOpts []harness.Option
	start   func(variant string, repeat int)
	done    func(variant string, repeat int, res *result.Run)
}

// Repeat runs every design n times (default 1), so the comparison can show the spread of
// each figure and tell a real difference from noise.
func Repeat(n int) Option { return func(o *options) { o.repeat = n } }

// Dir sets the comparison's directory (default harness.DefaultRunsDir/<UTC time>-compare-
// <scenario>); each run goes to DIR/<variant>/<repeat>.
func Dir(dir string) Option { return func(o *options) { o.dir = dir } }

// RunOptions are passed to every run (logger, seed, command...). A WithDir among them is
// overridden by the run's own directory.
func RunOptions(opts ...harness.Option) Option {
	return func(o *options) { o.runOpts = append(o.runOpts, opts...) }
}

// OnRunStart is called before each run, so a CLI can show which design is running.
func OnRunStart(fn func(variant string, repeat int)) Option {
	return func(o *options) { o.start = fn }
}

// OnRunDone is called after each run with its result, so a long comparison shows each
// verdict as it comes instead of only at the end.
func OnRunDone(fn func(variant string, repeat int, res *result.Run)) Option {
	return func(o *options) { o.done = fn }
}

// DefaultDir is where a comparison or a sweep (kind) of scenario writes its runs when not
// told: a directory of its own under harness.DefaultRunsDir, named by the UTC time.
func DefaultDir(kind, scenario string) string {
	return filepath.Join(harness.DefaultRunsDir, time.Now().UTC().Format("20060102T150405Z")+"-"+kind+"-"+scenario)
}

// claimDefaultDir returns dir when the caller gave one (it is the caller's to claim: the
// CLI holds it while it also writes the comparison's report there), else a new DefaultDir
// claimed until release.
func claimDefaultDir(dir, kind, scenario string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	return harness.ClaimNewDir(DefaultDir(kind, scenario))
}

// Run runs every variant with the same seeded load and fault schedule, repeat times
// each, and returns each design's runs with their histories, ready for reports.Compare.
// Runs are interleaved (every design's first repeat, then every design's second...) so a
// machine that gets busier during the comparison slows every design alike instead of the
// last one. Design files are looked up before anything starts, so a misspelt path fails
// at once. A run that ends in a harness error is kept (verdict error) and the comparison
// goes on; a scenario that is invalid, or a cancelled ctx, stops it, and the runs done so
// far are returned with the error.
func Run(ctx context.Context, variants []Variant, opts ...Option) ([]result.DesignRuns, error) {
	o := options{repeat: 1}
	for _, fn := range opts {
		if fn != nil {
			fn(&o)
		}
	}
	if len(variants) < 2 {
		return nil, fmt.Errorf("compare designs: %d design(s), a comparison needs two or more", len(variants))
	}
	if o.repeat < 1 || o.repeat > MaxRepeat {
		return nil, fmt.Errorf("compare designs: repeat %d is outside 1..%d", o.repeat, MaxRepeat)
	}
	seen := map[string]bool{}
	for _, v := range variants {
		if v.Scenario == nil {
			return nil, fmt.Errorf("compare designs: design %q has no scenario", v.Name)
		}
		if v.Name == "" || seen[v.Name] || strings.ContainsAny(v.Name, `/\`) || v.Name == "." || v.Name == ".." {
			return nil, fmt.Errorf("compare designs: design name %q is empty, repeated or not usable as a directory name", v.Name)
		}
		seen[v.Name] = true
		if v.Scenario.System.Design.Path != "" {
			if _, err := reference.DesignPath(v.Scenario); err != nil {
				return nil, fmt.Errorf("compare designs: %s: %w", v.Name, err)
			}
		}
	}
	dir, release, err := claimDefaultDir(o.dir, "compare", variants[0].Scenario.Name)
	if err != nil {
		return nil, fmt.Errorf("compare designs: %w", err)
	}
	defer release()
	groups := make([]result.DesignRuns, len(variants))
	for i, v := range variants {
		groups[i].Design = v.Name
	}
	for rep := 1; rep <= o.repeat; rep++ {
		for i, v := range variants {
			if err := ctx.Err(); err != nil {
				return groups, fmt.Errorf("compare designs: %w", context.Cause(ctx))
			}
			if o.start != nil {
				o.start(v.Name, rep)
			}
			runOpts := append(append([]harness.Option{harness.WithSystemFor(systems.For)}, o.runOpts...), harness.WithDir(filepath.Join(dir, v.Name, strconv.Itoa(rep))))
			res, err := harness.Run(ctx, v.Scenario, runOpts...)
			var verr *harness.ValidationError
			if errors.As(err, &verr) {
				return groups, err
			}
			// A run stopped by its own abort_when is a finding about that design; only an
			// interrupted comparison stops here.
			if ctx.Err() != nil {
				return groups, fmt.Errorf("compare designs: %s run %d aborted: %s", v.Name, rep, res.Reason)
			}
			groups[i].Runs = append(groups[i].Runs, res)
			if h := historyPath(res); h != "" {
				groups[i].Histories = append(groups[i].Histories, h)
			}
			if o.done != nil {
				o.done(v.Name, rep, res)
			}
		}
	}
	return groups, nil
}

// historyPath is where a run's history is, or "" when it wrote none.
func historyPath(res *result.Run) string {
	if res == nil || res.History == "" {
		return ""
	}
	if filepath.IsAbs(res.History) || res.RunDir == "" {
		return res.History
	}
	return filepath.Join(res.RunDir, res.History)
}
