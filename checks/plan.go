package checks

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// planned is one check of the scenario placed in one phase, with its result name.
type planned struct {
	check scenarios.Check
	phase string // phase name
	fault string // fault of a during phase, "" otherwise
	name  string // result name; sub-results append "/<property>"
}

// plan lists every check of sc in evaluation order (steady state before, before, during
// in timeline order, after, overall, steady state after) and names it. A check keeps the
// name the scenario gives it, except a steady-state check, which runs in two windows and
// is prefixed with its window; an unnamed check is named after its phase, kind and
// filters ("during:slow-api/latency_p99/browse"). Names are unique: a repeat gets
// "#2", "#3".
func plan(sc *scenarios.Scenario, phases []result.Phase) []planned {
	has := map[string]bool{}
	for _, p := range phases {
		has[p.Name] = true
	}
	var out []planned
	used := map[string]int{}
	add := func(c scenarios.Check, phase, fault string, prefix bool) {
		name := c.Name
		switch {
		case name == "":
			name = phase + "/" + autoName(c)
		case prefix:
			name = phase + "/" + name
		}
		used[name]++
		if n := used[name]; n > 1 {
			name = fmt.Sprintf("%s#%d", name, n)
		}
		out = append(out, planned{check: c, phase: phase, fault: fault, name: name})
	}
	steady := func(phase string) {
		if !has[phase] {
			return
		}
		for _, c := range sc.SteadyState {
			add(c, phase, "", true)
		}
	}
	steady(PhaseSteadyBefore)
	for _, c := range sc.Expect.Before {
		add(c, PhaseBefore, "", false)
	}
	seen := map[string]bool{}
	during := func(f string) {
		if seen[f] {
			return
		}
		seen[f] = true
		for _, c := range sc.Expect.During[f] {
			add(c, During(f), f, false)
		}
	}
	for _, f := range sc.Faults {
		during(f.Name)
	}
	for _, f := range sortedKeys(sc.Expect.During) {
		during(f) // names no fault of the timeline; evaluated as skipped
	}
	for _, c := range sc.Expect.After {
		add(c, PhaseAfter, "", false)
	}
	for _, c := range sc.Expect.Overall {
		add(c, PhaseOverall, "", false)
	}
	steady(PhaseSteadyAfter)
	return out
}

// autoName names an unnamed check after its kind and filters, as the kind says.
func autoName(c scenarios.Check) string {
	if n, ok := c.Spec.(scenarios.AutoNamed); ok {
		if name := n.AutoName(); name != "" {
			return name
		}
	}
	return c.Type
}

// LiveCheck is a check the harness must run against the live system when its phase ends
// (At on the run's clock): http_probe and command. Evaluate leaves them out; the harness
// adds the results of Run to the checks it hands Decide.
type LiveCheck struct {
	Name  string
	Phase string
	At    time.Duration
	Check scenarios.Check
}

// LiveEnv is what a live check needs from the harness.
type LiveEnv struct {
	BaseURL string // gateway base URL, for probes of a path
	Token   string // bearer token for the probe, "" for none
	Dir     string // working directory of commands
}

// LiveChecks lists the live checks of sc in the order their phases end (then scenario
// order), named like Evaluate names checks.
func LiveChecks(sc *scenarios.Scenario, phases []result.Phase) []LiveCheck {
	if sc == nil {
		return nil
	}
	ws := windows(phases)
	var out []LiveCheck
	for _, p := range plan(sc, phases) {
		if isLive(p.check) {
			out = append(out, LiveCheck{Name: p.name, Phase: p.phase, At: ws[p.phase].end, Check: p.check})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// Run evaluates the live check now, with its name and phase set.
func (lc LiveCheck) Run(ctx context.Context, env LiveEnv) result.Check {
	var c result.Check
	if k, ok := kindOf(lc.Check); ok && k.live != nil {
		c = k.live(ctx, lc.Check.Spec, env)
	} else {
		c = result.Check{Kind: lc.Check.Type, Skipped: true, Message: fmt.Sprintf("%s is not a live check", lc.Check.Type)}
	}
	c.Name, c.Kind, c.Phase = lc.Name, lc.Check.Type, lc.Phase
	return c
}
