package harness_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
)

// countedPair is pair with a state of its own: how many calls front took and how many
// items store served. The harness knows nothing of it but sut.State.
type countedPair struct {
	*pair
	lost int64 // items store served that its state never shows
}

// pairState is countedPair's state: it has converged when store served every call.
type pairState struct{ Calls, Served int64 }

func (p countedPair) ReadState(context.Context) (sut.State, error) {
	// Served first: a call counted after it is never one served before it was taken.
	served := p.served.Load() - p.lost
	return &pairState{Served: served, Calls: p.calls.Load()}, nil
}

// Holds when store served every call the previous read saw.
func (s *pairState) Holds(prev sut.State) string {
	if p := prev.(*pairState); s.Served < p.Calls {
		return fmt.Sprintf("%d of the %d calls seen before are not served yet", p.Calls-s.Served, p.Calls)
	}
	return ""
}

func (s *pairState) Mismatch() string {
	if s.Served != s.Calls {
		return fmt.Sprintf("%d calls, %d served", s.Calls, s.Served)
	}
	return ""
}

func (s *pairState) Summary() map[string]string {
	return map[string]string{"calls": fmt.Sprint(s.Calls), "served": fmt.Sprint(s.Served)}
}

// allServed is a check kind a user registers for their own system: every call the load
// made was taken by front and served by store, judged from the final state
// (checks.FinalJudge) and the run's requests.
type allServed struct {
	Within scenarios.Duration `yaml:"within" json:"within" doc:"bound on the convergence after the last heal" required:"true"`
}

func (c *allServed) Validate() []error { return nil }

func (c *allServed) FinalEvaluator(checks.Phase) checks.FinalEvaluator { return &servedEval{spec: c} }

type servedEval struct {
	spec *allServed
	sent int64
}

func (e *servedEval) Request(r *loadgen.Result) {
	if r.Acknowledged() {
		e.sent++
	}
}

func (e *servedEval) Results(final *checks.Final) []result.Check {
	var st *pairState
	if final != nil {
		st, _ = final.State.(*pairState)
	}
	if st == nil {
		return []result.Check{{Name: "served", Skipped: true, Message: "no state read"}}
	}
	served := result.Check{Name: "served", Figure: float64(st.Served), Op: ">=", Threshold: float64(e.sent), Passed: st.Served >= e.sent,
		Message: fmt.Sprintf("%d items served for %d acknowledged calls", st.Served, e.sent)}
	conv := result.Check{Name: "converged", Figure: final.ConvergedAfter.Seconds(), Op: "<=", Threshold: e.spec.Within.Std().Seconds(),
		Passed:  final.ConvergedAfter >= 0 && final.ConvergedAfter <= e.spec.Within.Std(),
		Message: fmt.Sprintf("converged %s after the last heal", final.ConvergedAfter)}
	if final.ConvergedAfter < 0 {
		conv.Message = "never converged within the bound"
	}
	return []result.Check{served, conv}
}

var registerAllServed = sync.OnceValue(func() error {
	return scenarios.RegisterCheck("all_served", func() scenarios.CheckSpec { return &allServed{} })
})

// TestRunJudgesAStateOfItsOwn: the pipeline watches a system's own state converge after
// the last heal and hands it, with every request of the run, to a kind registered from
// outside checks; neither harness nor checks knows what the state holds.
func TestRunJudgesAStateOfItsOwn(t *testing.T) {
	require.NoError(t, registerAllServed())
	const yaml = `name: own-state
description: A system under test with a state of its own, judged by a kind of its own.
seed: 5
load:
  rate: 20/s
  duration: 4s
  timeout: 3s
  mix: {call: 1}
  targets:
    - {name: call, url: "http://%s/call"}
faults:
  - name: slow-store
    type: latency
    target: front->store
    latency: 200ms
    at: 1s
    for: 1s
expect:
  overall:
    - {check: all_served, name: store, within: 3s}
`
	for _, tt := range []struct {
		name     string
		lost     int64
		wantPass bool
		converge string // a substring of the converged check's message
	}{
		{"every call served: converged after the heal", 0, true, "after the last heal"},
		{"one item lost: never converges", 1, false, "never converged"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := countedPair{pair: newPair(t), lost: tt.lost}
			sc, err := scenarios.Parse("own-state.yaml", fmt.Appendf(nil, yaml, p.frontAddr()))
			require.NoError(t, err)
			res, err := harness.Run(t.Context(), sc, harness.WithSystem(p), harness.WithDir(t.TempDir()), harness.WithConvergeBound(time.Second))
			require.NoError(t, err, "reason: %s", res.Reason)
			byName := map[string]result.Check{}
			for _, c := range res.Checks {
				byName[c.Name] = c
			}
			for _, name := range []string{"store/served", "store/converged"} {
				c, ok := byName[name]
				require.True(t, ok, "check %s evaluated: %v", name, res.Checks)
				assert.False(t, c.Skipped, "%s: %s", name, c.Message)
				assert.Equal(t, "all_served", c.Kind)
			}
			assert.Positive(t, byName["store/served"].Threshold, "the kind saw the run's requests")
			conv := byName["store/converged"]
			assert.Equal(t, tt.wantPass, conv.Passed, conv.Message)
			assert.Contains(t, conv.Message, tt.converge)
			if tt.wantPass {
				assert.Equal(t, result.Passed, res.Verdict, res.Reason)
				assert.Less(t, conv.Figure, 3.0)
			} else {
				assert.Equal(t, result.Failed, res.Verdict, res.Reason)
			}
		})
	}
}
