package console

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/observe"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/sut"
)

// TestConsoleMembershipChanges: an instance the registry listed once is news when it goes
// and when it comes back; the first reading, and a reading unchanged, are not.
func TestConsoleMembershipChanges(t *testing.T) {
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	tests := []struct {
		name          string
		prev, now     map[string]bool
		members       map[string]bool
		want          []string
		wantMembersOf []string
	}{
		{name: "first reading", prev: nil, now: set("order-1", "order-2"), members: set(),
			want: nil, wantMembersOf: []string{"order-1", "order-2"}},
		{name: "unchanged", prev: set("order-1", "order-2"), now: set("order-1", "order-2"), members: set("order-1", "order-2"),
			want: nil, wantMembersOf: []string{"order-1", "order-2"}},
		{name: "lease expired", prev: set("order-1", "order-2"), now: set("order-1"), members: set("order-1", "order-2"),
			want: []string{"order-2 left the registry (lease expired or deregistered)"}, wantMembersOf: []string{"order-1", "order-2"}},
		{name: "back after a restart", prev: set("order-1"), now: set("order-1", "order-2"), members: set("order-1", "order-2"),
			want: []string{"order-2 rejoined the registry"}, wantMembersOf: []string{"order-1", "order-2"}},
		{name: "registry empty, then a new instance", prev: set("order-1", "product-1"), now: set("product-2"), members: set("order-1", "product-1"),
			want:          []string{"order-1 left the registry (lease expired or deregistered)", "product-1 left the registry (lease expired or deregistered)", "product-2 joined the registry"},
			wantMembersOf: []string{"order-1", "product-1", "product-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := membershipChanges(tt.prev, tt.now, tt.members)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, set(tt.wantMembersOf...), tt.members)
		})
	}
}

func TestConsoleFigures(t *testing.T) {
	at := time.Unix(0, 0)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var many []sample
	for i := 1; i <= 100; i++ {
		many = append(many, sample{at: at, latency: ms(i), ok: i%10 != 0})
	}
	tests := []struct {
		name    string
		samples []sample
		want    Figures
	}{
		{name: "none", want: Figures{}},
		{name: "one failed", samples: []sample{{at: at, latency: ms(40)}}, want: Figures{Throughput: 0.5, Errors: 0.5, P50: 40, P99: 40}},
		{name: "a hundred, one in ten failed", samples: many, want: Figures{Throughput: 50, Errors: 5, P50: 50, P99: 99}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, figures(tt.samples, 2*time.Second))
		})
	}
}

func TestConsoleSumGauges(t *testing.T) {
	gauges := []sut.Gauge{{Metric: "queue_backlog"}, {Metric: "absent"}}
	metrics := map[string]observe.Sample{
		"a|queue_backlog":               {Component: "a", Name: "queue_backlog", Value: 3},
		"b|queue_backlog":               {Component: "b", Name: "queue_backlog", Value: 4},
		"b|queue_backlog{stream=\"x\"}": {Component: "b", Name: "queue_backlog", Labels: map[string]string{"stream": "x"}, Value: 1},
		"a|other":                       {Component: "a", Name: "other", Value: 100},
	}
	assert.Equal(t, map[string]float64{"queue_backlog": 8}, sumGauges(metrics, gauges), "summed over instances and labels; a gauge nobody publishes missing")
	assert.Nil(t, sumGauges(metrics, nil))
}

// fakeProc is a runtime process whose runtime tells its state (runtime.Inspector).
type fakeProc struct {
	runtime.Process
	st  runtime.State
	err error
}

func (p fakeProc) State(context.Context) (runtime.State, error) { return p.st, p.err }

// inspectable is a system that lends its instances' processes (sut.Inspectable).
type inspectable struct {
	sut.System
	procs   map[string]runtime.Process
	running bool
}

func (s inspectable) Process(name string) (runtime.Process, bool) {
	p, ok := s.procs[name]
	return p, ok
}

func (s inspectable) Running(string) bool { return s.running }

// TestConsoleInstanceState: an instance's state is what its runtime says (a paused
// container runs, by the process table, but is frozen); a runtime that cannot say, or an
// engine that does not answer, leaves whether it runs.
func TestConsoleInstanceState(t *testing.T) {
	tests := []struct {
		name string
		sys  sut.System
		want string
	}{
		{"paused container", inspectable{procs: map[string]runtime.Process{"a": fakeProc{st: runtime.State{Running: true, Paused: true, Attached: true}}}, running: true}, "paused"},
		{"disconnected container", inspectable{procs: map[string]runtime.Process{"a": fakeProc{st: runtime.State{Running: true, Attached: false}}}, running: true}, "disconnected"},
		{"running", inspectable{procs: map[string]runtime.Process{"a": fakeProc{st: runtime.State{Running: true, Attached: true}}}, running: true}, "running"},
		{"stopped", inspectable{procs: map[string]runtime.Process{"a": fakeProc{st: runtime.State{}}}, running: true}, "down"},
		{"engine does not answer", inspectable{procs: map[string]runtime.Process{"a": fakeProc{err: errors.New("inspect container a: timeout")}}, running: true}, "running"},
		{"engine does not answer, not running", inspectable{procs: map[string]runtime.Process{"a": fakeProc{err: errors.New("no such container")}}}, "down"},
		{"runtime cannot tell", inspectable{procs: map[string]runtime.Process{"a": struct{ runtime.Process }{}}, running: true}, "running"},
		{"never started", inspectable{procs: map[string]runtime.Process{}}, "down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := instanceState(t.Context(), tt.sys, "a")
			assert.Equal(t, tt.want, got)
		})
	}
}
