package console

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/undo"
)

// stepLoadFor bounds the load of a scenario stepped through by hand: a class has the time
// of a lesson, and the load stops with the last step anyway.
const stepLoadFor = 30 * time.Minute

// ScenarioInfo is one catalog scenario as the page lists it.
type ScenarioInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Playable says the scenario runs on the system this console started; Why says what
	// to start instead when it does not.
	Playable bool   `json:"playable"`
	Why      string `json:"why,omitempty"`
	Faults   int    `json:"faults"`
}

// PlayState is a scenario playing (or played) in the console, as the page shows it.
type PlayState struct {
	Scenario    string `json:"scenario"`
	Description string `json:"description"`
	// Step says the scenario goes phase by phase, each on the page's "next".
	Step bool `json:"step"`
	// Next is what "next" does now (step mode, waiting); "" while a phase runs.
	Next     string      `json:"next,omitempty"`
	Elapsed  float64     `json:"elapsed_s"` // since its load started
	Planned  float64     `json:"planned_s"` // its load's duration (play mode)
	Faults   []PlayFault `json:"faults"`
	Checks   []CheckView `json:"checks"`
	Done     bool        `json:"done"`
	Verdict  string      `json:"verdict,omitempty"`
	Reason   string      `json:"reason,omitempty"`
	Error    string      `json:"error,omitempty"`
	Finished time.Time   `json:"finished,omitzero"`
}

// PlayFault is one fault of the scenario playing: pending, injected or healed.
type PlayFault struct {
	Name   string  `json:"name"`
	Type   string  `json:"type"`
	At     float64 `json:"at_s"`
	For    float64 `json:"for_s"`
	State  string  `json:"state"`
	Effect string  `json:"effect,omitempty"`
}

// CheckView is one check of the scenario playing: pending until its phase closes, then
// passed, failed or skipped, with the check's own sentence.
type CheckView struct {
	Name    string `json:"name"`
	Phase   string `json:"phase"`
	State   string `json:"state"` // pending, passed, failed, skipped
	Message string `json:"message,omitempty"`
}

// play is one scenario playing: its load and its fault timelines (one in play mode, one
// per step in step mode), the pipeline's own.
type play struct {
	sc        *scenarios.Scenario
	step      bool
	groups    [][]scenarios.FaultSpec // step mode: the faults each step injects
	stage     int                     // step mode: the next group
	waiting   bool                    // step mode: waiting for next
	cancel    context.CancelFunc
	ctx       context.Context
	done      chan struct{}
	kick      chan struct{} // asks for an evaluation, off the timeline's goroutines
	loadStart time.Time
	loadEnd   time.Time // zero while the load runs
	// histFrom is where the scenario's events begin in the session's history: its checks
	// are judged on them alone, as a run's, so an evaluation costs the scenario's length,
	// not the session's.
	histFrom  int64
	lr        *loadRun
	summary   loadgen.Summary
	timelines []*harness.Timeline
	final     *harness.FinalState     // the system's state read after the load, as a run reads it
	checks    []result.Check          // the last evaluation
	judged    func(phase string) bool // whether a phase had closed when checks were evaluated
	finished  bool
	stopped   bool // by hand (or the console closing), before its end
	verdict   string
	reason    string
	err       string
	wg        sync.WaitGroup
}

// metricNames lists the metrics the checks of the scenarios the console can play read, so
// that its scraper writes them into the history the checks are evaluated from.
func (c *Console) metricNames() []string {
	var out []string
	for _, name := range scenarios.Catalog() {
		sc, err := scenarios.Builtin(name)
		if err != nil {
			continue
		}
		if ok, _ := c.playable(sc); ok {
			out = append(out, sc.MetricNames()...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Scenarios lists the catalog with what can be played on the console's system.
func (c *Console) Scenarios() []ScenarioInfo {
	var out []ScenarioInfo
	for _, name := range scenarios.Catalog() {
		sc, err := scenarios.Builtin(name)
		if err != nil {
			continue
		}
		info := ScenarioInfo{Name: name, Description: sc.Description, Faults: len(sc.Faults)}
		info.Playable, info.Why = c.playable(sc)
		out = append(out, info)
	}
	return out
}

// playable reports whether sc runs on the system the console started: the same system
// section (replicas, gateways, design, lease) and no topology of its own.
func (c *Console) playable(sc *scenarios.Scenario) (bool, string) {
	if sc.Topology != nil || c.base.Topology != nil || !reflect.DeepEqual(sc.System, c.base.System) {
		return false, "needs a system of its own: start faultline console " + sc.Name
	}
	return true, ""
}

// Play plays the catalog scenario name on the console's system: its load and its faults
// on its timeline, through the pipeline's own timeline; with step, phase by phase, each
// fault's window on Next. Its checks are evaluated as their phases close.
func (c *Console) Play(name string, step bool) error {
	sc, err := scenarios.Builtin(name)
	if err != nil {
		return fmt.Errorf("play scenario: %w", err)
	}
	if ok, why := c.playable(sc); !ok {
		return fmt.Errorf("play %s: %s", name, why)
	}
	c.mu.Lock()
	busy := c.scen != nil && !c.scen.finished
	hand := len(c.hand)
	c.mu.Unlock()
	switch {
	case busy:
		return fmt.Errorf("play %s: scenario %s is playing; stop it first", name, c.scen.sc.Name)
	case hand > 0:
		return fmt.Errorf("play %s: %d hand fault(s) in place; heal them first, so the scenario's checks judge its own faults", name, hand)
	}
	spec, targets, err := c.up.LoadSpec(sc, sc.Seed)
	if err != nil {
		return fmt.Errorf("play %s: %w", name, err)
	}
	if step {
		spec.Duration = stepLoadFor
	}
	c.endLoad(true)
	ctx, cancel := context.WithCancel(context.Background())
	p := &play{sc: sc, step: step, cancel: cancel, ctx: ctx, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	p.histFrom = c.historySize()
	go func() {
		for {
			select {
			case <-p.done:
				return
			case <-p.kick:
				c.evaluatePlay(p)
			}
		}
	}()
	if step {
		p.groups = stepGroups(sc.Faults)
	}
	lr := &loadRun{rate: int(sc.Load.Rate.PerSecond()), cancel: cancel, done: make(chan struct{}), started: time.Now()}
	if lr.rate == 0 && len(sc.Load.Ramp) > 0 {
		lr.rate = int(sc.Load.Ramp[len(sc.Load.Ramp)-1].Rate.PerSecond())
	}
	p.lr, p.loadStart = lr, lr.started
	c.mu.Lock()
	c.scen, c.load = p, lr
	plan := harness.LoadPlan(sc.Load)
	if step {
		plan = "at its rate until the last step"
	}
	c.addEvent("load", fmt.Sprintf("scenario %s: load %s", name, plan))
	c.mu.Unlock()
	go func() {
		defer close(lr.done)
		sum, err := loadgen.RunTargets(ctx, spec, targets, func(r loadgen.Result) { c.result(lr, r) }, loadgen.WithEpoch(c.began))
		c.mu.Lock()
		p.summary, p.loadEnd = sum, time.Now()
		if err != nil && ctx.Err() == nil {
			p.err = "load: " + err.Error()
		}
		c.mu.Unlock()
	}()
	if step {
		c.mu.Lock()
		p.waiting = true
		c.mu.Unlock()
		c.event("load", fmt.Sprintf("scenario %s, step by step: before its first fault; next when ready", name))
		go func() { <-lr.done; c.finishPlay(p) }()
		return nil
	}
	if err := c.startTimeline(p, sc, lr.started); err != nil {
		cancel()
		return err
	}
	go func() {
		<-lr.done
		p.wg.Wait()
		c.finishPlay(p)
	}()
	return nil
}

// startTimeline records the timeline's faults in the undo record, then starts it.
func (c *Console) startTimeline(p *play, sc *scenarios.Scenario, loadStart time.Time) error {
	tl := c.up.NewTimeline(sc, loadStart, c.hist, func(harness.Progress) { p.evaluateSoon() })
	c.mu.Lock()
	p.timelines = append(p.timelines, tl)
	err := c.recordLocked()
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("play %s: %w", p.sc.Name, err)
	}
	tl.Start(p.ctx)
	p.wg.Go(func() {
		tl.Wait()
		p.evaluateSoon()
		c.mu.Lock()
		if p.step && !p.finished {
			p.waiting = true
		}
		c.mu.Unlock()
	})
	return nil
}

// Next advances a scenario stepped through by hand: it plays the next step's faults (each
// for its own length, healed on its own), or, after the last, ends the load and judges
// every check.
func (c *Console) Next() error {
	c.mu.Lock()
	p := c.scen
	switch {
	case p == nil || p.finished:
		c.mu.Unlock()
		return errors.New("next step: no scenario is playing")
	case !p.step:
		c.mu.Unlock()
		return errors.New("next step: the scenario plays on its own timeline")
	case !p.waiting:
		c.mu.Unlock()
		return errors.New("next step: the current step's faults are still in place")
	}
	if p.stage >= len(p.groups) {
		c.mu.Unlock()
		p.cancel() // the load ends; finishPlay judges the rest
		return nil
	}
	group := p.groups[p.stage]
	p.stage++
	p.waiting = false
	c.mu.Unlock()
	sub := *p.sc
	sub.Faults = group
	names := make([]string, len(group))
	for i, f := range group {
		names[i] = f.Name
	}
	c.event("fault", fmt.Sprintf("scenario %s: step %d, %s", p.sc.Name, p.stage, strings.Join(names, ", ")))
	return c.startTimeline(p, &sub, time.Now())
}

// StopPlay ends the scenario playing: its load stops and its faults are healed at once.
func (c *Console) StopPlay() {
	c.mu.Lock()
	p := c.scen
	c.mu.Unlock()
	if p != nil && !p.finished {
		c.mu.Lock()
		p.stopped = true
		c.mu.Unlock()
		p.cancel()
		<-p.done
	}
}

// finishPlay waits for the timelines, then judges every check and says the verdict.
func (c *Console) finishPlay(p *play) {
	p.wg.Wait()
	c.mu.Lock()
	if c.load == p.lr {
		c.load = nil
		on := p.loadEnd.Sub(p.loadStart)
		c.loadOn += on
		c.planned += float64(p.summary.Due)
	}
	tl := (*harness.Timeline)(nil)
	if n := len(p.timelines); n > 0 {
		tl = p.timelines[n-1]
	}
	stopped := p.stopped
	c.mu.Unlock()
	if tl == nil { // nothing injected: the state still converges, counted from the load's end
		tl = c.up.NewTimeline(&scenarios.Scenario{Name: p.sc.Name}, p.loadStart, c.hist, nil)
	}
	// Stopped by hand, nothing is concluded and nobody waits for convergence.
	var final *harness.FinalState
	if !stopped {
		cctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		fs := tl.Converge(cctx)
		cancel()
		final = &fs
	}
	c.mu.Lock()
	p.final = final
	p.finished = true
	p.waiting = false
	c.mu.Unlock()
	c.evaluatePlay(p)
	c.mu.Lock()
	// The timelines are healed: the undo record holds the hand faults alone again.
	if err := c.recordLocked(); err != nil {
		c.addEvent("error", "update undo record: "+err.Error())
	}
	c.mu.Unlock()
	c.event("load", fmt.Sprintf("scenario %s finished: %s", p.sc.Name, p.verdictText()))
	close(p.done)
}

// historySize is the session's history's length on disk once flushed (0 when it cannot
// be told: the scenario is then judged on the whole history, correct but slower).
func (c *Console) historySize() int64 {
	if err := c.hist.Flush(); err != nil {
		return 0
	}
	fi, err := os.Stat(filepath.Join(c.up.Dir, harness.HistoryFile))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// evaluateSoon asks for an evaluation without waiting for it: the timeline calls it at
// each inject and heal, and must not be held up by reading the history.
func (p *play) evaluateSoon() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *play) verdictText() string {
	if p.reason == "" {
		return p.verdict
	}
	return p.verdict + ": " + p.reason
}

// evaluatePlay evaluates the scenario's checks over the history so far, with the
// harness's evaluator; the page shows a check only once its phase has closed.
func (c *Console) evaluatePlay(p *play) {
	if err := c.hist.Flush(); err != nil {
		return
	}
	c.mu.Lock()
	var fs []result.Fault
	var lastHeal time.Duration
	for _, tl := range p.timelines {
		fs = append(fs, tl.Faults()...)
		lastHeal = max(lastHeal, tl.LastHeal())
	}
	end := time.Now()
	if !p.loadEnd.IsZero() {
		end = p.loadEnd
	}
	loadStart, loadEnd := p.loadStart.Sub(c.began), end.Sub(c.began)
	sum, finished := p.summary, p.finished
	final := harness.FinalState{Err: "the state is read once the scenario is finished"}
	if p.final != nil {
		final = *p.final
	}
	judged := closedPhases(fs, finished && !p.stopped)
	c.mu.Unlock()
	ev := harness.Evaluation{
		Scenario: p.sc, HistoryPath: filepath.Join(c.up.Dir, harness.HistoryFile), HistoryFrom: p.histFrom, Faults: fs,
		Phases: checks.Phases(p.sc, fs, loadStart, loadEnd), Load: sum, LoadStart: loadStart, LoadEnd: loadEnd, LastHeal: lastHeal,
		Final: final,
	}
	cks, err := harness.DefaultEvaluator().Evaluate(context.Background(), ev)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		p.err = "evaluate checks: " + err.Error()
		return
	}
	p.checks, p.judged = cks, judged
	if finished && p.stopped {
		p.verdict, p.reason = string(result.Aborted), "stopped by hand before its end; its faults were healed at once"
		return
	}
	if finished {
		res := &result.Run{Checks: cks, Faults: fs, Load: result.Load{PlannedRate: sum.PlannedRate, AchievedRate: sum.AchievedRate, Requests: int64(sum.Issued)}}
		v, reason, _ := checks.Decide(p.sc, res.Checks, res.Faults, res.Load)
		p.verdict, p.reason = string(v), reason
	}
}

// stepGroups splits a timeline into the steps a class goes through: faults whose windows
// overlap play together, each at its offset from the first of them.
func stepGroups(fs []scenarios.FaultSpec) [][]scenarios.FaultSpec {
	sorted := slices.Clone(fs)
	slices.SortStableFunc(sorted, func(a, b scenarios.FaultSpec) int { return int(a.At - b.At) })
	var out [][]scenarios.FaultSpec
	var start, end scenarios.Duration
	for _, f := range sorted {
		if len(out) > 0 && f.At < end {
			end = max(end, f.End())
			f.At -= start
			out[len(out)-1] = append(out[len(out)-1], f)
			continue
		}
		start, end = f.At, f.End()
		f.At = 0
		out = append(out, []scenarios.FaultSpec{f})
	}
	return out
}

// playState is the page's view of the scenario playing; c.mu is held.
func (c *Console) playStateLocked(now time.Time) *PlayState {
	p := c.scen
	if p == nil {
		return nil
	}
	st := &PlayState{Scenario: p.sc.Name, Description: p.sc.Description, Step: p.step, Done: p.finished, Error: p.err}
	end := now
	if !p.loadEnd.IsZero() {
		end = p.loadEnd
	}
	st.Elapsed = end.Sub(p.loadStart).Seconds()
	if !p.step {
		st.Planned = p.sc.Load.Duration.Std().Seconds()
	}
	if p.finished {
		st.Verdict, st.Reason = p.verdict, p.reason
	}
	if p.waiting && !p.finished {
		if p.stage < len(p.groups) {
			var names []string
			for _, f := range p.groups[p.stage] {
				names = append(names, f.Name)
			}
			st.Next = "inject " + strings.Join(names, ", ")
		} else {
			st.Next = "finish: stop the load and judge every check"
		}
	}
	played := map[string]result.Fault{}
	for _, tl := range p.timelines {
		for _, f := range tl.Faults() {
			played[f.Name] = f
		}
	}
	for _, fs := range p.sc.Faults {
		pf := PlayFault{Name: fs.Name, Type: fs.Type, At: fs.At.Std().Seconds(), For: fs.For.Std().Seconds(), State: "pending"}
		if f, ok := played[fs.Name]; ok && f.Injected > 0 {
			pf.State = "injected"
			if f.Healed > 0 {
				pf.State = "healed"
			}
			if e := f.Effect; e != nil && e.Unit != "" {
				pf.Effect = fmt.Sprintf("measured %.4g %s of %.4g configured", e.Measured, e.Unit, e.Configured)
			}
		}
		st.Faults = append(st.Faults, pf)
	}
	shown := map[string]bool{}
	for _, ck := range p.checks {
		if !p.judged(ck.Phase) {
			continue
		}
		state := "failed"
		switch {
		case ck.Skipped:
			state = "skipped"
		case ck.Passed:
			state = "passed"
		}
		st.Checks = append(st.Checks, CheckView{Name: ck.Name, Phase: ck.Phase, State: state, Message: ck.Message})
		shown[ck.Phase] = true
	}
	for _, pc := range plannedChecks(p.sc) {
		if !shown[pc.Phase] {
			st.Checks = append(st.Checks, pc)
		}
	}
	return st
}

// closedPhases tells, from the faults played so far, which phases are over and can be
// judged: before once a fault is in, a fault's window once it is healed, the rest once
// the scenario is finished.
func closedPhases(fs []result.Fault, finished bool) func(phase string) bool {
	injected, healed := false, map[string]bool{}
	for _, f := range fs {
		injected = injected || f.Injected > 0
		healed[f.Name] = f.Healed > 0
	}
	return func(phase string) bool {
		switch {
		case finished:
			return true
		case phase == checks.PhaseBefore || phase == checks.PhaseSteadyBefore:
			return injected
		case strings.HasPrefix(phase, checks.DuringPrefix):
			return healed[strings.TrimPrefix(phase, checks.DuringPrefix)]
		}
		return false
	}
}

// plannedChecks lists the scenario's checks by the phase they judge, all pending.
func plannedChecks(sc *scenarios.Scenario) []CheckView {
	var out []CheckView
	add := func(phase string, list []scenarios.Check) {
		for _, ck := range list {
			out = append(out, CheckView{Name: cmpOr(ck.Name, ck.Type), Phase: phase, State: "pending"})
		}
	}
	add(checks.PhaseSteadyBefore, sc.SteadyState)
	add(checks.PhaseBefore, sc.Expect.Before)
	for _, f := range sc.Faults {
		add(checks.During(f.Name), sc.Expect.During[f.Name])
	}
	add(checks.PhaseAfter, sc.Expect.After)
	if len(sc.Faults) > 0 { // without faults the steady state is judged once, before
		add(checks.PhaseSteadyAfter, sc.SteadyState)
	}
	add(checks.PhaseOverall, sc.Expect.Overall)
	return out
}

// playUndoLocked is the undo record's share of the scenario playing; c.mu is held.
func (c *Console) playUndoLocked() []undo.Fault {
	if c.scen == nil || c.scen.finished {
		return nil
	}
	var out []undo.Fault
	for _, tl := range c.scen.timelines {
		out = append(out, tl.UndoFaults()...)
	}
	return out
}

// playInPlaceLocked lists the faults of the scenario playing that are injected and not yet
// healed; c.mu is held.
func (c *Console) playInPlaceLocked() []scenarios.FaultSpec {
	p := c.scen
	if p == nil || p.finished {
		return nil
	}
	var out []scenarios.FaultSpec
	for _, tl := range p.timelines {
		for _, f := range tl.Faults() {
			if f.Injected == 0 || f.Healed > 0 {
				continue
			}
			if i := slices.IndexFunc(p.sc.Faults, func(s scenarios.FaultSpec) bool { return s.Name == f.Name }); i >= 0 {
				out = append(out, p.sc.Faults[i])
			}
		}
	}
	return out
}

// targetOfSpec is a fault's own target as written in the scenario.
func targetOfSpec(f scenarios.FaultSpec) string {
	if ff, ok := f.Spec.(faults.Fault); ok {
		return harness.FaultTarget(ff)
	}
	return ""
}
