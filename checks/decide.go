package checks

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// Decide decides a run from its checks (Evaluate's and the live ones), its faults and its
// load, and says why in one line.
//
// A run is Invalid, whatever its checks say, when a fault did not land (its effect says
// Landed=false, or a fault_landed check did not pass), when the load fell below its
// throughput floor (a throughput check did not pass, or, without one, the achieved rate
// fell short of loadgen.MinRateShare of the plan), or when the steady state did not hold
// before the first fault: such a run cannot show what it claims.
//
// Otherwise, without expect_failure, it is Failed at the first check that did not pass
// (a skipped check counts as not passed) and Passed when all did. With expect_failure it
// is Passed only if the named check failed with a message matching Reason and every
// other check passed; Failed otherwise, saying which. The ExpectedFailure record is
// returned for a scenario with expect_failure, nil otherwise.
func Decide(sc *scenarios.Scenario, checks []result.Check, faults []result.Fault, load result.Load) (result.Verdict, string, *result.ExpectedFailure) {
	var ef *result.ExpectedFailure
	if sc != nil && sc.ExpectFailure != nil {
		ef = &result.ExpectedFailure{Check: sc.ExpectFailure.Check, Reason: sc.ExpectFailure.Explanation}
	}
	var named, failedOther []result.Check
	if ef != nil {
		longer := longerNames(sc, ef.Check)
		for _, c := range checks {
			switch {
			case belongsTo(c.Name, ef.Check) && !slices.ContainsFunc(longer, func(n string) bool { return belongsTo(c.Name, n) }):
				named = append(named, c)
				ef.Results = append(ef.Results, c.Name)
			case !c.Passed:
				failedOther = append(failedOther, c)
			}
		}
	}
	if reason := invalidity(checks, faults, load); reason != "" {
		return result.Invalid, reason, ef
	}
	if ef == nil {
		for _, c := range checks {
			if !c.Passed {
				return result.Failed, notPassed(c), nil
			}
		}
		return result.Passed, fmt.Sprintf("all %d checks passed", len(checks)), nil
	}
	re, err := regexp.Compile(sc.ExpectFailure.Reason)
	if err != nil {
		return result.Error, fmt.Sprintf("compile expect_failure reason: %v", err), ef
	}
	if len(named) == 0 {
		return result.Failed, fmt.Sprintf("expect_failure names check %q, which was not evaluated", ef.Check), ef
	}
	var observed, otherWay, skipped *result.Check
	for i := range named {
		c := &named[i]
		switch {
		case c.Skipped:
			skipped = c
		case c.Passed:
		case re.MatchString(c.Message):
			if observed == nil {
				observed = c
			}
		default:
			otherWay = c
		}
	}
	switch {
	case observed != nil && len(failedOther) > 0:
		ef.Observed = true
		return result.Failed, fmt.Sprintf("%s failed as expected, but %s", observed.Name, notPassed(failedOther[0])), ef
	case observed != nil:
		ef.Observed = true
		return result.Passed, fmt.Sprintf("expected failure observed: %s: %s", observed.Name, observed.Message), ef
	case otherWay != nil:
		return result.Failed, fmt.Sprintf("%s failed, but not as expected: %q does not match %q", otherWay.Name, otherWay.Message, sc.ExpectFailure.Reason), ef
	case skipped != nil:
		return result.Failed, fmt.Sprintf("%s was expected to fail but could not be evaluated: %s", skipped.Name, skipped.Message), ef
	}
	return result.Failed, fmt.Sprintf("%s was expected to fail but passed: %s", named[0].Name, named[0].Message), ef
}

func invalidity(checks []result.Check, faults []result.Fault, load result.Load) string {
	for _, f := range faults {
		if f.Effect != nil && !f.Effect.Landed {
			reason := fmt.Sprintf("fault %s did not land: measured %s against %s configured", f.Name, num(f.Effect.Measured), num(f.Effect.Configured))
			if f.Effect.Detail != "" {
				reason += " (" + f.Effect.Detail + ")"
			}
			return reason
		}
	}
	hasThroughput := false
	for _, c := range checks {
		switch {
		case c.Kind == scenarios.CheckFaultLanded && !c.Passed:
			return fmt.Sprintf("fault did not land (%s): %s", c.Name, c.Message)
		case c.Kind == scenarios.CheckThroughput:
			hasThroughput = true
			if !c.Passed {
				return "load below its throughput floor: " + c.Message
			}
		}
	}
	if !hasThroughput && load.PlannedRate > 0 && loadgen.FellShort(load.AchievedRate, load.PlannedRate) {
		return fmt.Sprintf("load below its throughput floor: achieved %.1f req/s of %.1f planned, under %s",
			load.AchievedRate, load.PlannedRate, pct(loadgen.MinRateShare))
	}
	for _, c := range checks {
		if c.Phase == PhaseSteadyBefore && !c.Passed {
			return "steady state did not hold before the first fault: " + c.Message
		}
	}
	return ""
}

func notPassed(c result.Check) string {
	if c.Skipped {
		return fmt.Sprintf("%s could not be evaluated: %s", c.Name, c.Message)
	}
	return fmt.Sprintf("%s failed: %s", c.Name, c.Message)
}

// longerNames lists the scenario's check names that extend want with "/": a result named
// "errors/browse" belongs to the check named so, not to a check named "errors" whose
// sub-results would share that prefix.
func longerNames(sc *scenarios.Scenario, want string) []string {
	var out []string
	add := func(list []scenarios.Check) {
		for _, c := range list {
			if strings.HasPrefix(c.Name, want+"/") {
				out = append(out, c.Name)
			}
		}
	}
	add(sc.SteadyState)
	add(sc.Expect.Before)
	for _, k := range sortedKeys(sc.Expect.During) {
		add(sc.Expect.During[k])
	}
	add(sc.Expect.After)
	add(sc.Expect.Overall)
	return out
}

// belongsTo reports whether the result named got comes from the scenario check named
// want: the same name, a sub-result ("want/exactly_once") or a steady-state window of it
// ("steady_state:before/want").
func belongsTo(got, want string) bool {
	for _, p := range []string{PhaseSteadyBefore + "/", PhaseSteadyAfter + "/"} {
		if rest, ok := strings.CutPrefix(got, p); ok && !strings.HasPrefix(want, p) {
			got = rest
			break
		}
	}
	return got == want || strings.HasPrefix(got, want+"/")
}
