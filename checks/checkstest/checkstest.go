// Package checkstest builds the synthetic runs that check kinds are proved on: a fixture
// scenario, requests and metric samples on the load clock, a history file, and Evaluate
// indexed by check name. The tests of `checks` and of a check kind registered from
// outside it (a system's own, like reference/consistency) use the same fixture, so a kind's
// must-fail and must-pass cases read alike wherever the kind lives.
package checkstest

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// LoadEnd is when the fixture's load ends: it runs from 0 to 10 s.
const LoadEnd = 10 * time.Second

// SlowFault is the fixture's fault, "slow", injected at 2 s and healed at 6 s. Phases:
// steady_state:before [1s,2s), before [0,2s), during:slow [2s,6s), after [6s,10s),
// overall [0,10s), steady_state:after [8s,10s).
var SlowFault = result.Fault{
	Name: "slow", Type: "latency", Targets: []string{"gateway->product"},
	At: result.Duration(2 * time.Second), For: result.Duration(4 * time.Second),
	Injected: result.Duration(2 * time.Second), Healed: result.Duration(6 * time.Second),
	Effect: &result.Effect{Configured: 0.3, Measured: 0.33, Unit: "s", Landed: true},
}

// Scenario is the fixture scenario (10/s for 10 s, the fault "slow"), changed by mod.
func Scenario(mod func(*scenarios.Scenario)) *scenarios.Scenario {
	sc := &scenarios.Scenario{
		Name: "fixture",
		Load: scenarios.LoadSpec{Rate: scenarios.Rate{Freq: 10, Per: time.Second}, Duration: scenarios.Duration(LoadEnd)},
		Faults: []scenarios.FaultSpec{{Name: "slow", Type: "latency",
			At: scenarios.Duration(2 * time.Second), For: scenarios.Duration(4 * time.Second)}},
		Expect: scenarios.Expect{During: map[string][]scenarios.Check{}},
	}
	if mod != nil {
		mod(sc)
	}
	return sc
}

// Check is an unnamed check of spec's registered kind ("unknown" for an unregistered spec).
func Check(spec scenarios.CheckSpec) scenarios.Check {
	kind := scenarios.KindOf(spec)
	if kind == "" {
		kind = "unknown"
	}
	return scenarios.Check{Type: kind, Spec: spec}
}

// Named is Check with a name.
func Named(name string, spec scenarios.CheckSpec) scenarios.Check {
	c := Check(spec)
	c.Name = name
	return c
}

// ReqOpt changes a fixture request.
type ReqOpt func(*loadgen.Result)

// Journey sets the request's journey.
func Journey(j string) ReqOpt { return func(r *loadgen.Result) { r.Journey = j } }

// Status sets the answer's status; 2xx and 3xx are OK.
func Status(s int) ReqOpt {
	return func(r *loadgen.Result) { r.Status, r.OK = s, s >= 200 && s < 400 }
}

// Fallback marks the answer as served by the named fallback.
func Fallback(f string) ReqOpt { return func(r *loadgen.Result) { r.Fallback = f } }

// Path sets the request's method and path.
func Path(method, p string) ReqOpt { return func(r *loadgen.Result) { r.Method, r.Path = method, p } }

// Failed makes the request fail with status s (0: no answer) and err.
func Failed(s int, err string) ReqOpt {
	return func(r *loadgen.Result) { r.Status, r.OK, r.Error = s, false, err }
}

// Cut marks the request as cut by the load's stop: no answer, outcome unknown.
func Cut() ReqOpt {
	return func(r *loadgen.Result) { r.Status, r.OK, r.Error, r.Cut = 0, false, "context canceled", true }
}

// Place makes the request a placement under key that created created; its outcome is set
// by Status.
func Place(key, created string) ReqOpt {
	return func(r *loadgen.Result) {
		r.Journey, r.Method, r.Path, r.Key, r.Created = "place_order", "POST", "/orders", key, created
	}
}

// Req is a request that started at start and took lat; by default a successful browse.
func Req(start, lat time.Duration, opts ...ReqOpt) history.Event {
	r := loadgen.Result{Journey: "browse", Method: "GET", Path: "/products", Start: start, Latency: lat, Status: 200, OK: true}
	for _, o := range opts {
		o(&r)
	}
	ev := history.RequestEvent(r)
	ev.T = max(r.End(), 1)
	return ev
}

// Sample is a metric sample at t; labels are name, value pairs.
func Sample(t time.Duration, component, name string, value float64, labels ...string) history.Event {
	m := history.Metric{Component: component, Name: name, Value: value}
	if len(labels) > 0 {
		m.Labels = map[string]string{}
		for i := 0; i+1 < len(labels); i += 2 {
			m.Labels[labels[i]] = labels[i+1]
		}
	}
	ev := history.MetricEvent(m)
	ev.T = max(t, 1)
	return ev
}

// WriteHistory writes events to a new history file; events need not be in time order
// (a history is in completion order, and requests complete out of start order).
func WriteHistory(t testing.TB, events []history.Event) string {
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

// Inputs are the fixture's phases with faults in place.
func Inputs(sc *scenarios.Scenario, faults ...result.Fault) checks.Inputs {
	return checks.Inputs{Phases: checks.Phases(sc, faults, 0, LoadEnd), Faults: faults}
}

// Evaluate runs checks.Evaluate over events and indexes the results by name; a name that
// repeats fails t.
func Evaluate(t testing.TB, sc *scenarios.Scenario, events []history.Event, in checks.Inputs) map[string]result.Check {
	t.Helper()
	got, err := checks.Evaluate(context.Background(), sc, WriteHistory(t, events), in)
	require.NoError(t, err)
	out := map[string]result.Check{}
	for _, c := range got {
		_, dup := out[c.Name]
		require.False(t, dup, "check name %q repeats", c.Name)
		out[c.Name] = c
	}
	return out
}

// One is the result named name, failing t when there is none.
func One(t testing.TB, got map[string]result.Check, name string) result.Check {
	t.Helper()
	c, ok := got[name]
	require.True(t, ok, "no check %q in %v", name, slices.Sorted(maps.Keys(got)))
	return c
}
