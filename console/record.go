package console

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// SessionFile is the recorded session's scenario, written into the run directory on Close
// beside the history and the result.
const SessionFile = "session.yaml"

// stoppedRate is how an exported scenario writes a stretch with the load stopped by hand:
// a scenario's rate is above zero, and one request a minute is the nearest to none.
var stoppedRate = scenarios.Rate{Freq: 1, Per: time.Minute}

// loadStep is one hand change of the load: its new rate and mix from at on, rate 0 once
// stopped.
type loadStep struct {
	at   time.Time
	rate int
	mix  map[string]float64
}

// recFault is one hand fault as the session record keeps it, healed or not.
type recFault struct {
	id       int
	kind     string
	params   map[string]string
	fault    faults.Fault // a fresh copy decoded from params, for the export
	injected time.Time
	healed   time.Time // zero while in place
	effect   *result.Effect
}

// name is the fault's name in the history and in the exported scenario.
func (f recFault) name() string {
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(f.kind, "_", "-"), f.id)
}

// Export is the session's hand actions up to now as a scenario on the console's system:
// its load from the first start, each rate change and stop as a ramp step, and every hand
// fault with its time counted from load start, its length and its parameters. `faultline
// run` replays it; `faultline validate` accepts it (Export checks that before returning).
func (c *Console) Export(now time.Time) (*scenarios.Scenario, error) {
	c.mu.Lock()
	loads, fs := slices.Clone(c.loads), slices.Clone(c.recorded)
	c.mu.Unlock()
	sc, err := exportSession(c.base, loads, fs, now)
	if err != nil {
		return nil, err
	}
	b, err := scenarios.Marshal(sc)
	if err != nil {
		return nil, err
	}
	back, err := scenarios.Parse(SessionFile, b)
	if err == nil {
		if errs := back.Validate(scenarios.SystemShape{}); len(errs) > 0 {
			err = errors.Join(errs...)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("export session: the recorded scenario does not validate: %w", err)
	}
	return sc, nil
}

// exportSession builds the scenario of a session: base's system, seed and load settings,
// with the load's rate and length and the fault timeline from the hand actions. Times
// count from the first load start; a fault placed before it starts with the load, one
// healed before it is left out (the description says so).
func exportSession(base *scenarios.Scenario, loads []loadStep, fs []recFault, now time.Time) (*scenarios.Scenario, error) {
	if len(loads) == 0 || loads[0].rate == 0 {
		return nil, errors.New("export session: the load never started; a scenario's times count from load start, so start the load first")
	}
	origin := loads[0].at
	rel := func(t time.Time) scenarios.Duration {
		return scenarios.Duration(max(t.Sub(origin), 0).Round(time.Millisecond))
	}
	// The load ends at the last stop, or now while it runs, and never before a heal.
	end := now
	if last := loads[len(loads)-1]; last.rate == 0 {
		end = last.at
	}
	var notes []string
	sc := &scenarios.Scenario{
		Name: "console-session",
		Seed: base.Seed, System: base.System, Topology: base.Topology,
		Load: base.Load,
	}
	for _, f := range fs {
		healed := f.healed
		if healed.IsZero() {
			healed = now
		}
		if !healed.After(origin) {
			notes = append(notes, fmt.Sprintf("%s on %s was healed before the load started and is left out", f.kind, f.params["target"]))
			continue
		}
		if healed.After(end) {
			end = healed
		}
		at := rel(f.injected)
		sc.Faults = append(sc.Faults, scenarios.FaultSpec{
			Name: f.name(), Type: f.kind, At: at, For: max(rel(healed)-at, scenarios.Duration(time.Millisecond)), Spec: f.fault,
		})
	}
	duration := rel(end)
	if duration <= 0 {
		return nil, errors.New("export session: the load ran for no time yet; let it run, then export")
	}
	if duration.Std() > scenarios.MaxLoadDuration {
		return nil, fmt.Errorf("export session: the session's load lasts %s, more than a scenario's %s; export a shorter session", duration, scenarios.MaxLoadDuration)
	}
	sc.Load.Rate, sc.Load.Ramp, sc.Load.Duration = scenarios.Rate{}, nil, duration
	steps, first := rampOf(loads, rel, duration)
	if first != nil {
		sc.Load.Mix = maps.Clone(first)
	}
	if len(steps) == 1 {
		sc.Load.Rate = steps[0].Rate
	} else {
		sc.Load.Ramp = steps
	}
	for i, s := range loads {
		if s.rate != 0 || rel(s.at) >= duration {
			continue
		}
		until := duration
		if i+1 < len(loads) {
			until = rel(loads[i+1].at)
		}
		notes = append(notes, fmt.Sprintf("the load was stopped by hand from %s to %s, written as %s, the lowest rate a scenario takes", rel(s.at), until, stoppedRate))
	}
	sc.Description = fmt.Sprintf("A console session recorded at %s: the hand actions on the system of %s (load changes, %d fault(s) injected and healed by hand), with every time counted from load start.",
		origin.UTC().Format(time.RFC3339), cmpOr(base.Name, "the console"), len(sc.Faults))
	if len(notes) > 0 {
		sc.Description += " " + strings.Join(notes, "; ") + "."
	}
	return sc, nil
}

// rampOf turns the load's hand changes into ramp steps, equal steps merged and a stop
// written as stoppedRate; the last step holds until the load's end. A step whose mix
// differs from the step before carries it; the first step's is returned, for the load's
// own mix.
func rampOf(loads []loadStep, rel func(time.Time) scenarios.Duration, end scenarios.Duration) ([]scenarios.RampStep, map[string]float64) {
	var out []scenarios.RampStep
	var starts []scenarios.Duration
	var mixes []map[string]float64 // the mix in force in each step
	for _, s := range loads {
		r := stoppedRate
		if s.rate > 0 {
			r = scenarios.Rate{Freq: s.rate, Per: time.Second}
		}
		at := rel(s.at)
		if at >= end {
			break
		}
		if n := len(out); n > 0 && out[n-1].Rate == r && maps.Equal(mixes[n-1], s.mix) {
			continue
		}
		if n := len(starts); n > 0 && starts[n-1] == at {
			out[n-1].Rate, mixes[n-1] = r, s.mix // two changes in one millisecond: the later one holds
			continue
		}
		out = append(out, scenarios.RampStep{Rate: r})
		starts = append(starts, at)
		mixes = append(mixes, s.mix)
	}
	for i := range out {
		next := end
		if i+1 < len(out) {
			next = starts[i+1]
		}
		out[i].For = next - starts[i]
		if i > 0 && !maps.Equal(mixes[i], mixes[i-1]) {
			out[i].Mix = maps.Clone(mixes[i])
		}
	}
	if len(mixes) == 0 {
		return out, nil
	}
	return out, mixes[0]
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// writeResult writes the session's result.json: what ran and when, the hand faults on the
// run's clock and the load's totals, so that `faultline report` renders the session from
// it and its history. A session evaluates no checks, so its verdict is invalid, never
// passed: the exported scenario, run, gives the verdict.
func (c *Console) writeResult(now time.Time) error {
	c.mu.Lock()
	res := &result.Run{
		Scenario: "console-session", Runtime: "local", StartedAt: c.began.UTC(),
		Duration: result.Duration(now.Sub(c.began)), RunDir: c.up.Dir, History: harness.HistoryFile,
		Verdict: result.Invalid,
		Reason:  "a console session: hand actions, no checks evaluated",
		Hint:    "export the session (" + SessionFile + " in the run directory, or the page's export) and run it with faultline run for a verdict",
		Load:    result.Load{Requests: int64(c.issued), Errors: int64(c.failed)},
	}
	if c.base != nil {
		res.Seed, res.Description = c.base.Seed, c.base.Description
	}
	var loadStart, loadEnd time.Duration
	if len(c.loads) > 0 {
		loadStart = c.loads[0].at.Sub(c.began)
		loadEnd = now.Sub(c.began)
		if last := c.loads[len(c.loads)-1]; last.rate == 0 {
			loadEnd = last.at.Sub(c.began)
		}
		res.LoadStart = result.Duration(loadStart)
		if secs := c.loadOn.Seconds(); secs > 0 {
			res.Load.AchievedRate = float64(c.issued) / secs
			res.Load.PlannedRate = float64(c.planned) / secs
		}
	}
	for _, f := range c.recorded {
		rf := result.Fault{Name: f.name(), Type: f.kind}
		if t, ok := f.fault.(faults.Targeted); ok {
			rf.Targets = t.Targets()
		}
		rf.Injected = result.Duration(f.injected.Sub(c.began))
		if !f.healed.IsZero() {
			rf.Healed = result.Duration(f.healed.Sub(c.began))
		}
		if len(c.loads) > 0 {
			rf.At = result.Duration(max(f.injected.Sub(c.loads[0].at), 0))
		}
		if !f.healed.IsZero() {
			rf.For = result.Duration(f.healed.Sub(f.injected))
		}
		rf.Effect = f.effect
		res.Faults = append(res.Faults, rf)
	}
	c.mu.Unlock()
	for _, comp := range c.sys.Topology() {
		res.Topology = append(res.Topology, result.Component{Name: comp.Name, Kind: comp.Kind, Service: comp.Service})
	}
	for _, l := range c.up.Links.All() {
		res.Links = append(res.Links, result.Link{From: l.From, To: l.To})
	}
	if sc, err := c.Export(now); err == nil {
		res.Phases = checks.Phases(sc, res.Faults, loadStart, loadEnd)
		res.Description = sc.Description
	}
	return res.Save(filepath.Join(c.up.Dir, harness.ResultFile))
}
