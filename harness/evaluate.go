package harness

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// Evaluation is everything a finished run's checks are evaluated from.
type Evaluation struct {
	Scenario    *scenarios.Scenario
	HistoryPath string
	// HistoryFrom is the byte offset of the first event to judge (checks.Inputs.HistoryFrom).
	HistoryFrom int64
	Phases      []result.Phase
	Faults      []result.Fault
	Load        loadgen.Summary
	Final       FinalState
	// LoadStart, LoadEnd and LastHeal are on the run's clock (the history's T).
	LoadStart, LoadEnd, LastHeal time.Duration
	LeaseTTL                     time.Duration
	// Live are the results of the live checks (http_probe, command) the harness ran at
	// the end of their phases.
	Live []result.Check
}

// Evaluator turns a finished run into evaluated checks.
type Evaluator interface {
	Evaluate(ctx context.Context, ev Evaluation) ([]result.Check, error)
}

// EvaluatorFunc adapts a function to Evaluator.
type EvaluatorFunc func(ctx context.Context, ev Evaluation) ([]result.Check, error)

// Evaluate calls f.
func (f EvaluatorFunc) Evaluate(ctx context.Context, ev Evaluation) ([]result.Check, error) {
	return f(ctx, ev)
}

// DefaultEvaluator evaluates checks with the checks package, from the history and the
// final state, and appends the live checks' results.
func DefaultEvaluator() Evaluator {
	return EvaluatorFunc(func(ctx context.Context, ev Evaluation) ([]result.Check, error) {
		var final *checks.Final // nothing was read: the kinds that judge the state are skipped, not failed
		if ev.Final.State != nil {
			final = &checks.Final{State: ev.Final.State, ConvergedAfter: -1}
			if ev.Final.Converged {
				ref := ev.LoadEnd
				if len(ev.Faults) > 0 && ev.LastHeal > 0 {
					ref = ev.LastHeal
				}
				final.ConvergedAfter = max(ev.Final.ConvergedAt-ref, 0)
			}
		}
		out, err := checks.Evaluate(ctx, ev.Scenario, ev.HistoryPath, checks.Inputs{
			Phases: ev.Phases, Faults: ev.Faults, Final: final, Load: loadOf(ev.Load), LeaseTTL: ev.LeaseTTL,
			HistoryFrom: ev.HistoryFrom,
		})
		if err != nil {
			return nil, err
		}
		return append(out, ev.Live...), nil
	})
}

// loadOf summarises what the load generator delivered for the result.
func loadOf(s loadgen.Summary) result.Load {
	l := result.Load{PlannedRate: s.PlannedRate, AchievedRate: s.AchievedRate, Requests: int64(s.Issued), Journeys: map[string]result.Journey{}}
	for code, n := range s.Statuses {
		if code == 0 || code >= 500 {
			l.Errors += int64(n)
		}
	}
	for name, j := range s.Journeys {
		var errs int64
		for code, n := range j.Statuses {
			if code == 0 || code >= 500 {
				errs += int64(n)
			}
		}
		l.Journeys[name] = result.Journey{Requests: int64(j.Count), Errors: errs,
			P50: result.Duration(j.Latency.P50), P95: result.Duration(j.Latency.P95), P99: result.Duration(j.Latency.P99)}
	}
	return l
}

// decide sets the verdict of a run whose checks are evaluated. The harness adds what only
// it knows — a fault that was never injected, a load that sent less than loadgen.MinRateShare
// of the requests due, a fault whose links no request crossed while it was in place (its
// proxies counted nothing but the harness's probes) — and leaves the rest to
// checks.Decide: a fault that did not land or
// a steady state broken before the first fault make the run invalid, a failed check
// fails it, and expect_failure turns the named check's failure into a pass.
func decide(sc *scenarios.Scenario, res *result.Run, load loadgen.Summary) {
	res.Hint = ""
	for _, f := range res.Faults {
		if f.Injected == 0 {
			res.Verdict, res.Reason = result.Invalid, fmt.Sprintf("fault %s was never injected", f.Name)
			res.Hint = "the load ended before the fault's time came"
			return
		}
	}
	if load.FellShort() {
		res.Verdict = result.Invalid
		res.Reason = fmt.Sprintf("the load sent %d of %d requests due (%.0f%%), below %.0f%% of its planned rate",
			load.Issued, load.Due, 100*float64(load.Issued)/float64(max(load.Due, 1)), 100*loadgen.MinRateShare)
		res.Hint = "lower load.rate or raise load.max_workers; the harness could not keep up"
		return
	}
	if reason := uncrossed(res.Faults); reason != "" {
		res.Verdict, res.Reason = result.Invalid, reason
		res.Hint = "the load's journeys do not use the fault's link; add a journey that does to load.mix, or target a link on the load's path"
		return
	}
	res.Verdict, res.Reason, res.ExpectedFailure = checks.Decide(sc, res.Checks, res.Faults, res.Load)
	switch {
	case res.Verdict == result.Invalid && strings.Contains(res.Reason, "did not land"):
		res.Hint = "check that the fault's target is on a path the load uses, and that the machine is not overloaded"
	case res.Verdict == result.Invalid && strings.Contains(res.Reason, "steady state"):
		res.Hint = "the system was unhealthy before anything was injected; look at its logs in the run directory"
	}
}
