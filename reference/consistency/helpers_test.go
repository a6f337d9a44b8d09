package consistency_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/reference/consistency"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

const (
	sec = time.Second
	ms  = time.Millisecond
)

// The fixture run: load from 0 to 10 s, fault "slow" injected at 2 s and healed at 6 s.
// Phases: steady_state:before [1s,2s), before [0,2s), during:slow [2s,6s),
// after [6s,10s), overall [0,10s), steady_state:after [8s,10s).
var slowFault = result.Fault{
	Name: "slow", Type: "latency", Targets: []string{"gateway->product"},
	At: result.Duration(2 * sec), For: result.Duration(4 * sec),
	Injected: result.Duration(2 * sec), Healed: result.Duration(6 * sec),
	Effect: &result.Effect{Configured: 0.3, Measured: 0.33, Unit: "s", Landed: true},
}

func scenario(mod func(*scenarios.Scenario)) *scenarios.Scenario {
	sc := &scenarios.Scenario{
		Name: "fixture",
		Load: scenarios.LoadSpec{Rate: scenarios.Rate{Freq: 10, Per: sec}, Duration: scenarios.Duration(10 * sec)},
		Faults: []scenarios.FaultSpec{{Name: "slow", Type: "latency",
			At: scenarios.Duration(2 * sec), For: scenarios.Duration(4 * sec)}},
		Expect: scenarios.Expect{During: map[string][]scenarios.Check{}},
	}
	if mod != nil {
		mod(sc)
	}
	return sc
}

func check(spec scenarios.CheckSpec) scenarios.Check {
	return scenarios.Check{Type: kindOf(spec), Spec: spec}
}

func named(name string, spec scenarios.CheckSpec) scenarios.Check {
	c := check(spec)
	c.Name = name
	return c
}

func kindOf(spec scenarios.CheckSpec) string {
	if k := scenarios.KindOf(spec); k != "" {
		return k
	}
	return "unknown"
}

type reqOpt func(*loadgen.Result)

func journey(j string) reqOpt { return func(r *loadgen.Result) { r.Journey = j } }
func status(s int) reqOpt     { return func(r *loadgen.Result) { r.Status, r.OK = s, s >= 200 && s < 400 } }
func failed(s int, err string) reqOpt {
	return func(r *loadgen.Result) { r.Status, r.OK, r.Error = s, false, err }
}
func place(key, order string) reqOpt { // a placement with its outcome set by status()
	return func(r *loadgen.Result) {
		r.Journey, r.Method, r.Path, r.Key, r.Created = "place_order", "POST", "/orders", key, order
	}
}

// req is a request that started at start and took lat; by default a successful browse.
func req(start, lat time.Duration, opts ...reqOpt) history.Event {
	r := loadgen.Result{Journey: "browse", Method: "GET", Path: "/products", Start: start, Latency: lat, Status: 200, OK: true}
	for _, o := range opts {
		o(&r)
	}
	ev := history.RequestEvent(r)
	ev.T = max(r.End(), 1)
	return ev
}

// writeHistory writes events to a new history file; events need not be in time order
// (a history is in completion order, and requests complete out of start order).
func writeHistory(t testing.TB, events []history.Event) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := history.Create(p, time.Now(), history.WithFlushInterval(0))
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	for _, ev := range events {
		require.NoError(t, w.Write(ev))
	}
	require.NoError(t, w.Close())
	return p
}

// final is the harness's view of st: the state, and when it converged (negative: never).
func final(st *consistency.State, convergedAfter time.Duration) *checks.Final {
	return &checks.Final{State: st, ConvergedAfter: convergedAfter}
}

func inputs(sc *scenarios.Scenario, faults ...result.Fault) checks.Inputs {
	return checks.Inputs{Phases: checks.Phases(sc, faults, 0, 10*sec), Faults: faults}
}

// evaluate runs Evaluate and indexes the results by name.
func evaluate(t *testing.T, sc *scenarios.Scenario, events []history.Event, in checks.Inputs) map[string]result.Check {
	t.Helper()
	got, err := checks.Evaluate(context.Background(), sc, writeHistory(t, events), in)
	require.NoError(t, err)
	out := map[string]result.Check{}
	for _, c := range got {
		_, dup := out[c.Name]
		require.False(t, dup, "check name %q repeats", c.Name)
		out[c.Name] = c
	}
	return out
}

func one(t *testing.T, got map[string]result.Check, name string) result.Check {
	t.Helper()
	c, ok := got[name]
	require.True(t, ok, "no check %q in %v", name, keys(got))
	return c
}

func keys(m map[string]result.Check) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
