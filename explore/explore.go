// Package explore searches a scenario's fault space under its load instead of running
// the faults someone scripted: it starts the scenario's system once (harness.StartSystem,
// the pipeline's own start step), runs the scenario's load without faults while every
// link proxy counts its traffic, and from what the load exercised enumerates candidate
// faults — every registered kind that applies, on every link between services that carried
// traffic and every instance at either end of one (links nobody used are pruned). Each
// candidate is a short trial through the one pipeline on the running system
// (harness.WithStarted): steady state judged, the fault injected and held under load,
// healed, the scenario's own checks (its invariants) judged on that window, then the
// system given time to be whole again — restarted only when it is not, which the report
// says. Depth 2 then combines the faults that passed alone, two by two, in a seeded order.
// A budget stops the search cleanly. Every failure is handed back as a minimal scenario
// (the same system, design, load and checks, only that fault at a fixed time) and
// verified by running it once through the normal run path before it is reported as
// reproduced. The outcome is a matrix, target × kind, in JSON, Markdown and HTML.
package explore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
)

// Defaults of an exploration.
const (
	DefaultBudget = 10 * time.Minute
	// DefaultSettle bounds the wait, after a trial, for every instance to run and every
	// route to be published again before the system is restarted instead.
	DefaultSettle = 20 * time.Second
	// ReportJSON, ReportMarkdown and ReportHTML are the outputs written into the
	// exploration's directory.
	ReportJSON     = "explore.json"
	ReportMarkdown = "explore.md"
	ReportHTML     = "explore.html"
	// cleanupTimeout bounds stopping the system on the way out.
	cleanupTimeout = 30 * time.Second
)

// Outcomes of a trial.
const (
	Passed  = "passed"
	Failed  = "failed"
	Invalid = "invalid"
	Error   = "error"
)

// Spec describes an exploration.
type Spec struct {
	// File is the scenario explored: its system, design, load and checks.
	File string
	// Design, when set, replaces the scenario's system.design (a design file).
	Design string
	// Budget bounds the search (default DefaultBudget); a trial that would not end
	// within it is not started. Verifying the failures comes after it.
	Budget time.Duration
	// Depth is 1 (single faults) or 2 (then pairs of faults that passed alone).
	Depth int
	// Kinds are the fault kinds tried (default DefaultKinds).
	Kinds []string
	// Dir receives the system's run directory, every trial's, the minimal scenarios and
	// the reports (default .faultline/explore/<UTC time>-<scenario>).
	Dir string
	// Seed, when set, replaces the scenario's seed; trial n runs with seed + n so that no
	// two trials send the same idempotency keys to the one system.
	Seed *int64
	// Shape is each trial's timeline (default DefaultShape).
	Shape Shape
	// Settle bounds the wait for the system to be whole after a trial (default DefaultSettle).
	Settle time.Duration
	// MaxRepros bounds how many failures are verified by a run of their minimal scenario
	// (0: all of them); the others are reported as not verified.
	MaxRepros int
	// SystemFor makes the system under test for a scenario (systems.For); Command and Args
	// are what it is given, as harness.WithCommand gives them.
	SystemFor harness.SystemFor
	Command   string
	Args      []string
	// Harness are options for the system's start and every run (WithLogger, WithReadyTimeout,
	// WithLinkOptions, WithConvergeBound); WithDir is set by explore.
	Harness []harness.Option
	// Progress receives one line per step; nil discards them.
	Progress func(line string)
}

// BrokenCheck is one check a trial broke, with its figures.
type BrokenCheck struct {
	Name      string  `json:"name"`
	Kind      string  `json:"kind"`
	Phase     string  `json:"phase"`
	Figure    float64 `json:"figure"`
	Op        string  `json:"op,omitempty"`
	Threshold float64 `json:"threshold"`
	Unit      string  `json:"unit,omitempty"`
	Skipped   bool    `json:"skipped,omitempty"`
	Message   string  `json:"message"`
}

// Repro is a failure's minimal scenario and what running it once showed.
type Repro struct {
	File string `json:"file"`
	// Verified is set when the scenario's run failed again, breaking at least one of the
	// checks the trial broke; Verdict and Broke are what that run gave.
	Verified bool     `json:"verified"`
	Verdict  string   `json:"verdict,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Broke    []string `json:"broke,omitempty"`
	RunDir   string   `json:"run_dir,omitempty"`
}

// Trial is one run of one fault (or a pair) on the running system.
type Trial struct {
	N       int           `json:"n"`
	Faults  []Candidate   `json:"faults"`
	Seed    int64         `json:"seed"`
	Outcome string        `json:"outcome"`
	Reason  string        `json:"reason,omitempty"`
	Broke   []BrokenCheck `json:"broke,omitempty"`
	// Scenario is the trial's scenario file; RunDir its run directory.
	Scenario string        `json:"scenario"`
	RunDir   string        `json:"run_dir"`
	Elapsed  time.Duration `json:"elapsed"`
	// Restarted says the system did not come back whole after this trial and was
	// restarted; Retried that the trial ran again after a restart because the steady state
	// did not hold before its fault.
	Restarted bool `json:"restarted,omitempty"`
	Retried   bool `json:"retried,omitempty"`
	// Recovery is how long the steady state took to return after the trial (settling
	// included); Probes counts the steady-state probes run meanwhile.
	Recovery time.Duration `json:"recovery"`
	Probes   int           `json:"probes,omitempty"`
	Repro    *Repro        `json:"repro,omitempty"`
}

// Key names the trial's faults: "latency gateway->product", "a + b" for a pair.
func (t Trial) Key() string {
	keys := make([]string, len(t.Faults))
	for i, c := range t.Faults {
		keys[i] = c.Key()
	}
	return strings.Join(keys, " + ")
}

// Coverage is how much of the space the search covered.
type Coverage struct {
	// Targets and Kinds are the space's sizes; Cells the applicable target × kind pairs.
	Targets int `json:"targets"`
	Kinds   int `json:"kinds"`
	Cells   int `json:"cells"`
	// Tried singles and pairs; NotTried are the cells (and pairs) the budget left.
	TriedSingles int `json:"tried_singles"`
	TriedPairs   int `json:"tried_pairs"`
	NotTried     int `json:"not_tried"`
	PairsPlanned int `json:"pairs_planned"`
	// Pruned targets (no traffic) and skipped kinds, with reasons.
	Pruned  []Skip `json:"pruned,omitempty"`
	Skipped []Skip `json:"skipped,omitempty"`
}

// Report is an exploration's outcome.
type Report struct {
	Scenario string    `json:"scenario"`
	File     string    `json:"file"`
	Design   string    `json:"design"`
	Depth    int       `json:"depth"`
	Kinds    []string  `json:"kinds"`
	Seed     int64     `json:"seed"`
	Shape    Shape     `json:"shape"`
	Started  time.Time `json:"started_at"`
	Dir      string    `json:"dir"`
	// Baseline is the discovery trial: the scenario's load without faults.
	Baseline Trial    `json:"baseline"`
	Targets  []Target `json:"targets"`
	Trials   []Trial  `json:"trials"`
	Coverage Coverage `json:"coverage"`
	// Search is the time the trials took (settling and restarts included), Budget its
	// bound, BudgetSpent whether it stopped the search; TrialsPerMinute counts trials
	// over Search.
	Search          time.Duration `json:"search"`
	Budget          time.Duration `json:"budget"`
	BudgetSpent     bool          `json:"budget_spent"`
	TrialsPerMinute float64       `json:"trials_per_minute"`
	Restarts        int           `json:"restarts"`
	Elapsed         time.Duration `json:"elapsed"`
	// Interrupted says ctx ended the search.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Failures are the trials that broke a check.
func (r *Report) Failures() []Trial {
	var out []Trial
	for _, t := range r.Trials {
		if t.Outcome == Failed {
			out = append(out, t)
		}
	}
	return out
}

// BaselineError is an exploration whose scenario does not pass without any fault: its
// checks cannot tell a fault's harm from the system's normal state.
type BaselineError struct{ Trial Trial }

func (e *BaselineError) Error() string {
	return fmt.Sprintf("explore: the scenario does not pass without faults (%s: %s); fix the scenario or the system first (run dir %s)",
		e.Trial.Outcome, e.Trial.Reason, e.Trial.RunDir)
}

// explorer is one exploration in progress.
type explorer struct {
	spec Spec
	src  []byte
	sc   *scenarios.Scenario // the explored scenario, as parsed
	name string
	seed int64
	up   *harness.Up
	sys  sut.System
	base *scenarios.Scenario // the fault-free variant the system is made for
	// fatal is a restart that failed: the search cannot go on without a system.
	fatal  error
	rep    *Report
	start  time.Time
	n      int // trials run, for their seeds and directories
	probes int // steady-state probes run, for theirs
}

// Explore runs the search Spec describes and returns its report, which it also writes to
// Dir (JSON, Markdown, HTML). The report is returned with a nil error whatever the trials
// found; errors are for explorations that could not run, a *BaselineError among them.
// An interrupted exploration returns what it covered with ctx's error.
func Explore(ctx context.Context, spec Spec) (*Report, error) {
	e, err := newExplorer(spec)
	if err != nil {
		return nil, err
	}
	err = e.run(ctx)
	if e.rep.Dir != "" && (err == nil || ctx.Err() != nil) {
		if werr := e.rep.Write(e.rep.Dir); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	return e.rep, err
}

func newExplorer(spec Spec) (*explorer, error) {
	if spec.SystemFor == nil {
		return nil, errors.New("explore: no system under test (pass SystemFor)")
	}
	spec.Budget = cmp.Or(spec.Budget, DefaultBudget)
	spec.Depth = cmp.Or(spec.Depth, 1)
	if spec.Depth < 1 || spec.Depth > 2 {
		return nil, fmt.Errorf("explore: depth %d: want 1 or 2", spec.Depth)
	}
	if len(spec.Kinds) == 0 {
		spec.Kinds = DefaultKinds
	}
	if err := ValidateKinds(spec.Kinds); err != nil {
		return nil, err
	}
	if spec.Shape == (Shape{}) {
		spec.Shape = DefaultShape
	}
	spec.Settle = cmp.Or(spec.Settle, DefaultSettle)
	if err := spec.Shape.Validate(spec.Kinds); err != nil {
		return nil, err
	}
	src, err := os.ReadFile(spec.File)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	sc, err := scenarios.Parse(spec.File, src)
	if err != nil {
		return nil, fmt.Errorf("parse scenario: %w", err)
	}
	if len(sc.Compare) > 0 && spec.Design == "" {
		return nil, fmt.Errorf("explore: %s compares %d designs; name the one to explore with a design (--design)", spec.File, len(sc.Compare))
	}
	seed := cmp.Or(sc.Seed, 1)
	if spec.Seed != nil {
		seed = *spec.Seed
	}
	e := &explorer{spec: spec, src: src, sc: sc, name: sc.Name, seed: seed}
	e.rep = &Report{Scenario: sc.Name, File: spec.File, Depth: spec.Depth, Kinds: spec.Kinds, Seed: seed,
		Shape: spec.Shape, Budget: spec.Budget, Started: time.Now().UTC()}
	return e, nil
}

func (e *explorer) progress(format string, args ...any) {
	if e.spec.Progress != nil {
		e.spec.Progress(fmt.Sprintf(format, args...))
	}
}

func (e *explorer) run(ctx context.Context) error {
	began := time.Now()
	defer func() { e.rep.Elapsed = time.Since(began) }()
	dir, release, err := harness.ClaimOutDir(e.spec.Dir, filepath.Join(".faultline", "explore", began.UTC().Format("20060102T150405Z")+"-"+e.name))
	if err != nil {
		return fmt.Errorf("create explore dir: %w", err)
	}
	defer release()
	dir, err = filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve explore dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "trials"), 0o755); err != nil {
		return fmt.Errorf("create explore dir: %w", err)
	}
	e.rep.Dir = dir

	// The system is made for the fault-free variant, which every trial's scenario matches
	// in everything but its faults.
	base, err := e.scenario(variant{name: e.name + "-explore-baseline", seed: e.seed, shape: e.spec.Shape,
		description: "The load of " + e.name + " without faults: what explore learns the exercised links from."}, "000-baseline")
	if err != nil {
		return err
	}
	e.base = base
	e.sys = e.spec.SystemFor(base, e.spec.Command, e.spec.Args...)
	if errs := e.sys.Validate(base); len(errs) > 0 {
		return &harness.ValidationError{Errs: errs}
	}
	e.progress("starting the system of %s in %s", e.name, dir)
	if err := e.startSystem(ctx); err != nil {
		return err
	}
	defer e.closeSystem(ctx)

	// Discovery: the load alone, with every proxy counting what crosses it.
	links := e.up.Links.All()
	watches := make([]*faults.TrafficWatch, len(links))
	for i, l := range links {
		watches[i] = e.up.Links.Watch([]string{l.Name()})
	}
	bt := e.trial(ctx, base, nil, 0)
	traffic := map[string]int{}
	for i, l := range links {
		traffic[l.Name()] = watches[i].Stop().Connections
	}
	e.rep.Baseline = bt
	if ctx.Err() != nil {
		e.rep.Interrupted = true
		return ctx.Err()
	}
	if bt.Outcome != Passed {
		return &BaselineError{Trial: bt}
	}
	e.progress("baseline passed in %s; design %s", bt.Elapsed.Round(100*time.Millisecond), e.rep.Design)
	if !e.settle(ctx, &bt) {
		e.rep.Baseline = bt
		if e.fatal != nil || ctx.Err() != nil {
			return e.stopped(ctx)
		}
	}

	sp := Enumerate(Observed{Links: links, Traffic: traffic, Components: e.sys.Topology()}, e.spec.Kinds)
	e.rep.Targets = sp.Targets
	cov := &e.rep.Coverage
	cov.Targets, cov.Kinds, cov.Cells = len(sp.Targets), len(sp.Kinds), len(sp.Singles)
	cov.Pruned, cov.Skipped = sp.Pruned, sp.Skipped
	e.progress("space: %d targets × %d kinds = %d single faults (%d targets pruned, %d kinds skipped); budget %s",
		len(sp.Targets), len(sp.Kinds), len(sp.Singles), len(sp.Pruned), len(sp.Skipped), e.spec.Budget)

	e.start = time.Now()
	// The search's figures stop with the last trial: verifying comes after it.
	searched := false
	endSearch := func() {
		if searched {
			return
		}
		searched = true
		e.rep.Search = time.Since(e.start)
		if n := len(e.rep.Trials); n > 0 && e.rep.Search > 0 {
			e.rep.TrialsPerMinute = float64(n) / e.rep.Search.Minutes()
		}
	}
	defer endSearch()
	var passed []Candidate
	for i, c := range sp.Singles {
		if !e.fits() {
			cov.NotTried += len(sp.Singles) - i
			e.rep.BudgetSpent = true
			break
		}
		t, ok := e.runTrial(ctx, []Candidate{c}, fmt.Sprintf("%d/%d", i+1, len(sp.Singles)))
		if !ok {
			return e.stopped(ctx)
		}
		cov.TriedSingles++
		if t.Outcome == Passed {
			passed = append(passed, c)
		}
	}
	if e.spec.Depth >= 2 && !e.rep.BudgetSpent {
		pairs := Pairs(passed, e.seed)
		cov.PairsPlanned = len(pairs)
		e.progress("depth 2: %d pairs of faults that passed alone", len(pairs))
		for i, p := range pairs {
			if !e.fits() {
				cov.NotTried += len(pairs) - i
				e.rep.BudgetSpent = true
				break
			}
			if _, ok := e.runTrial(ctx, p[:], fmt.Sprintf("pair %d/%d", i+1, len(pairs))); !ok {
				return e.stopped(ctx)
			}
			cov.TriedPairs++
		}
	}
	endSearch()
	e.closeSystem(ctx) // verification starts systems of its own; this one is done
	return e.verify(ctx)
}

// stopped is why the search ended early: ctx's end or a system that could not restart.
func (e *explorer) stopped(ctx context.Context) error {
	if e.fatal != nil {
		return e.fatal
	}
	e.rep.Interrupted = true
	return ctx.Err()
}

// fits reports whether one more trial ends within the budget, judged by the slowest
// trial so far (the shape plus the settle bound before the first).
func (e *explorer) fits() bool {
	longest := e.spec.Shape.Duration() + 5*time.Second
	for _, t := range e.rep.Trials {
		longest = max(longest, t.Elapsed+t.Recovery)
	}
	return time.Since(e.start)+longest <= e.spec.Budget
}

// startSystem starts (or restarts) the explored system in DIR/system.
func (e *explorer) startSystem(ctx context.Context) error {
	opts := append(slices.Clone(e.spec.Harness), harness.WithDir(filepath.Join(e.rep.Dir, "system")))
	up, err := harness.StartSystem(ctx, e.sys, "explore", opts...)
	if err != nil {
		return fmt.Errorf("start system: %w", err)
	}
	e.up = up
	return nil
}

// closeSystem stops the explored system; closing twice is harmless.
func (e *explorer) closeSystem(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if e.up != nil {
		e.up.Close(cctx)
	}
}

// scenario derives, writes and parses a trial's scenario.
func (e *explorer) scenario(v variant, stem string) (*scenarios.Scenario, error) {
	v.design = cmp.Or(e.spec.Design, v.design)
	b, err := derive(e.src, e.spec.File, v)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(e.rep.Dir, "trials", stem+".yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return nil, fmt.Errorf("write trial scenario: %w", err)
	}
	sc, err := scenarios.Parse(path, b)
	if err != nil {
		return nil, fmt.Errorf("parse trial scenario %s: %w", path, err)
	}
	return sc, nil
}

// runTrial runs one trial of cands, settles the system after it and records it; ok is
// false when ctx ended the search.
func (e *explorer) runTrial(ctx context.Context, cands []Candidate, label string) (Trial, bool) {
	keys := make([]string, len(cands))
	for i, c := range cands {
		keys[i] = c.Key()
	}
	key := strings.Join(keys, " + ")
	t := e.attempt(ctx, cands, keys)
	if ctx.Err() == nil && t.Outcome == Invalid && strings.Contains(t.Reason, "steady state") {
		// The system was not whole before the fault: restart it and try once more, as a
		// trial of its own (its own seed, so no idempotency key of the first attempt is
		// sent again and judged against orders that attempt made).
		e.progress("  steady state did not hold before %s; restarting the system and trying again", key)
		if e.restart(ctx) {
			t = e.attempt(ctx, cands, keys)
			t.Restarted, t.Retried = true, true
		}
	}
	if ctx.Err() != nil || e.fatal != nil {
		return t, false
	}
	if !e.settle(ctx, &t) && (ctx.Err() != nil || e.fatal != nil) {
		return t, false
	}
	e.rep.Trials = append(e.rep.Trials, t)
	e.progress("[%s %s] %s: %s (%s)%s", label, time.Since(e.start).Round(time.Second), key, describe(t),
		t.Elapsed.Round(100*time.Millisecond), restartNote(t))
	return t, true
}

func restartNote(t Trial) string {
	note := ""
	if t.Probes > 0 {
		note = fmt.Sprintf("; steady state back %s after it (%d probe(s))", t.Recovery.Round(100*time.Millisecond), t.Probes)
	}
	if t.Restarted {
		note += "; system restarted"
	}
	return note
}

// attempt derives a trial's scenario, with the next trial number and seed, and runs it.
func (e *explorer) attempt(ctx context.Context, cands []Candidate, keys []string) Trial {
	e.n++
	n := e.n
	stem := fmt.Sprintf("%03d-%s", n, slug(strings.Join(keys, " ")))
	v := variant{
		name: slug(e.name + " " + strings.Join(keys, " and ")), seed: e.seed + int64(n), shape: e.spec.Shape, faults: cands,
		description: fmt.Sprintf("Found by faultline explore of %s: %s injected at %s for %s under the scenario's load, judged by its checks.",
			e.name, strings.Join(keys, " + "), e.spec.Shape.Before, e.spec.Shape.Hold),
	}
	sc, err := e.scenario(v, stem)
	if err != nil {
		return Trial{N: n, Faults: cands, Seed: v.seed, Outcome: Error, Reason: err.Error()}
	}
	return e.trial(ctx, sc, cands, n)
}

// describe is a trial's outcome in one line.
func describe(t Trial) string {
	switch t.Outcome {
	case Failed:
		parts := make([]string, 0, len(t.Broke))
		for _, b := range t.Broke {
			parts = append(parts, b.Name+" "+figure(b))
		}
		return "FAILED " + strings.Join(parts, "; ")
	case Passed:
		return "passed"
	}
	return t.Outcome + ": " + t.Reason
}

// figure is a broken check's figure against its bound: "0.32 > 0.01 ratio".
func figure(b BrokenCheck) string {
	if b.Skipped {
		return "(skipped)"
	}
	op := map[string]string{"<=": ">", ">=": "<", "==": "!=", "<": ">=", ">": "<="}[b.Op]
	if op == "" {
		op = "vs"
	}
	return strings.TrimSpace(fmt.Sprintf("%s %s %s %s", fmtNum(b.Figure), op, fmtNum(b.Threshold), b.Unit))
}

func fmtNum(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", f), "0"), ".")
}

// trial runs sc on the running system through the pipeline and classifies its result.
func (e *explorer) trial(ctx context.Context, sc *scenarios.Scenario, cands []Candidate, n int) Trial {
	began := time.Now()
	runDir := strings.TrimSuffix(sc.File, ".yaml")
	t := Trial{N: n, Faults: cands, Seed: sc.Seed, Scenario: sc.File, RunDir: runDir}
	// A rerun of a trial (after a restart) gets a directory of its own.
	for i := 2; ; i++ {
		if _, err := os.Stat(t.RunDir); errors.Is(err, os.ErrNotExist) {
			break
		}
		t.RunDir = fmt.Sprintf("%s-%d", runDir, i)
	}
	opts := append(slices.Clone(e.spec.Harness), harness.WithStarted(e.up), harness.WithDir(t.RunDir))
	res, err := harness.Run(ctx, sc, opts...)
	t.Elapsed = time.Since(began)
	if res != nil && e.rep.Design == "" {
		e.rep.Design = res.Design
	}
	switch {
	case res == nil:
		t.Outcome, t.Reason = Error, fmt.Sprint(err)
	case res.Verdict == result.Passed:
		t.Outcome = Passed
	case res.Verdict == result.Failed:
		t.Outcome, t.Reason = Failed, res.Reason
		t.Broke = broken(res.Checks)
	case res.Verdict == result.Invalid:
		t.Outcome, t.Reason = Invalid, res.Reason
	default:
		t.Outcome, t.Reason = Error, cmp.Or(res.Reason, fmt.Sprint(err))
	}
	return t
}

// broken lists the checks that did not pass.
func broken(cs []result.Check) []BrokenCheck {
	var out []BrokenCheck
	for _, c := range cs {
		if c.Passed {
			continue
		}
		out = append(out, BrokenCheck{Name: c.Name, Kind: c.Kind, Phase: c.Phase, Figure: c.Figure, Op: c.Op,
			Threshold: c.Threshold, Unit: c.Unit, Skipped: c.Skipped, Message: c.Message})
	}
	return out
}

// ProbeLoad is how long one steady-state probe sends the scenario's load, without faults.
const ProbeLoad = 2 * time.Second

// settle waits for the steady state to return after t: every instance the system started
// runs and its routes are published again, and — unless t's own window after the heal
// already showed the steady state back (it passed) — a probe, the scenario's load for
// ProbeLoad without faults judged by its checks, passes; probes repeat until one does.
// When that does not come within the settle bound, it restarts the system and marks t.
// It records how long the steady state took to return and reports whether it did.
func (e *explorer) settle(ctx context.Context, t *Trial) bool {
	began := time.Now()
	sctx, cancel := context.WithTimeout(ctx, e.spec.Settle)
	defer cancel()
	whole := func() error {
		for _, p := range e.sys.Processes() {
			for !e.sys.Running(p.Name) {
				select {
				case <-sctx.Done():
					return fmt.Errorf("%s is not running", p.Name)
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
		if rp, ok := e.sys.(sut.RoutePublisher); ok {
			if err := rp.PublishRoutes(sctx); err != nil {
				return err
			}
		}
		if t.Outcome == Passed {
			return nil
		}
		for {
			p := e.probe(sctx)
			t.Probes++
			if p.Outcome == Passed {
				return nil
			}
			if sctx.Err() != nil {
				return fmt.Errorf("the last steady-state probe did not pass: %s", p.Reason)
			}
		}
	}
	err := whole()
	t.Recovery = time.Since(began)
	if err == nil {
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	e.progress("  the steady state did not return within %s (%v): restarting the system", e.spec.Settle, err)
	t.Restarted = true
	return e.restart(ctx)
}

// probe runs the scenario's load for ProbeLoad without faults on the running system.
func (e *explorer) probe(ctx context.Context) Trial {
	e.probes++
	sc, err := e.scenario(variant{name: e.name + "-explore-probe", seed: e.seed + 1_000_000 + int64(e.probes),
		shape: Shape{Before: ProbeLoad}, description: "A steady-state probe between explore's trials."},
		fmt.Sprintf("%03d-probe-%d", e.n, e.probes))
	if err != nil {
		return Trial{Outcome: Error, Reason: err.Error()}
	}
	return e.trial(ctx, sc, nil, 0)
}

// restart stops the system and starts it again in the same directory (its data kept).
func (e *explorer) restart(ctx context.Context) bool {
	e.closeSystem(ctx)
	e.rep.Restarts++
	// A fresh system value: a system under test is made for one start.
	e.sys = e.spec.SystemFor(e.base, e.spec.Command, e.spec.Args...)
	if err := e.startSystem(ctx); err != nil {
		e.fatal = fmt.Errorf("restart the system: %w", err)
		e.progress("  %v", e.fatal)
		return false
	}
	return true
}
