package faults

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// partitionFixture wires order-1, order-2, broker-1 and product-1 with the links a
// harness would create: service-wide callers for domain edges, per-process callers for
// the broker edge.
func partitionFixture(t *testing.T) (*Links, Env) {
	t.Helper()
	l := newLinks(t)
	procs := &staticProcs{services: map[string][]string{
		"order": {"order-1", "order-2"}, "broker": {"broker-1"}, "product": {"product-1"},
	}}
	for _, lk := range []Link{
		{From: "order", To: "broker-1", ToService: "broker"},
		{From: "broker-1", FromService: "broker", To: "order-1", ToService: "order"},
		{From: "order-1", FromService: "order", To: "order-2", ToService: "order"},
		{From: "order", To: "product-1", ToService: "product"},
	} {
		lk.Upstream = startEcho(t)
		addLink(t, l, lk)
	}
	return l, NewEnv(l, procs)
}

// staticProcs only answers Instances; partitions need nothing else.
type staticProcs struct{ services map[string][]string }

func (staticProcs) Kill(string) error                     { return nil }
func (staticProcs) Pause(string) error                    { return nil }
func (staticProcs) Resume(string) error                   { return nil }
func (staticProcs) Restart(context.Context, string) error { return nil }
func (staticProcs) Running(string) bool                   { return true }
func (p *staticProcs) Instances(s string) []string        { return p.services[s] }

func outcomes(t *testing.T, l *Links) map[string]Outcome {
	t.Helper()
	got := map[string]Outcome{}
	for _, lk := range l.All() {
		p, err := l.Probe(context.Background(), lk.Name(), ProbeSpec{})
		require.NoError(t, err)
		got[lk.Name()] = p.Outcome
	}
	return got
}

func TestPartitionCutsAcrossGroupsOnly(t *testing.T) {
	tests := []struct {
		name string
		f    *Partition
		want map[string]Outcome
	}{
		{
			name: "both directions black-holed",
			f:    &Partition{Groups: [][]string{{"order-1", "order-2"}, {"broker-1"}}},
			want: map[string]Outcome{
				"order->broker-1": OutcomeSilent, "broker-1->order-1": OutcomeSilent,
				"order-1->order-2": OutcomeAnswered, "order->product-1": OutcomeAnswered,
			},
		},
		{
			name: "one way: the first group cannot reach the second",
			f:    &Partition{Groups: [][]string{{"order"}, {"broker"}}, Direction: "one-way"},
			want: map[string]Outcome{
				"order->broker-1": OutcomeSilent, "broker-1->order-1": OutcomeAnswered,
				"order-1->order-2": OutcomeAnswered, "order->product-1": OutcomeAnswered,
			},
		},
		{
			name: "refuse instead of black hole",
			f:    &Partition{Groups: [][]string{{"order"}, {"broker-1"}}, Mode: "refuse"},
			want: map[string]Outcome{
				"order->broker-1": OutcomeRefused, "broker-1->order-1": OutcomeRefused,
				"order-1->order-2": OutcomeAnswered, "order->product-1": OutcomeAnswered,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Empty(t, tt.f.Validate())
			l, env := partitionFixture(t)
			eff := injectMeasure(t, env, tt.f)
			assert.True(t, eff.Landed, "effect %+v", eff)
			assert.Equal(t, eff.Configured, eff.Measured)
			assert.Equal(t, tt.want, outcomes(t, l))

			require.NoError(t, tt.f.Heal(context.Background(), env))
			for name, got := range outcomes(t, l) {
				assert.Equal(t, OutcomeAnswered, got, "%s after heal", name)
			}
		})
	}
}

func TestPartitionRefusesToSplitASharedLink(t *testing.T) {
	_, env := partitionFixture(t)
	// order-2 is not grouped, but order->broker-1 is shared by both order instances.
	f := &Partition{Groups: [][]string{{"order-1"}, {"broker-1"}}}
	err := f.Inject(context.Background(), env)
	require.Error(t, err)
	assert.Equal(t, "inject partition: cut link order->broker-1: only some instances of order are grouped, but its link is shared by all of them", err.Error())
}

func TestPartitionWithNothingToCutFails(t *testing.T) {
	_, env := partitionFixture(t)
	err := (&Partition{Groups: [][]string{{"product-1"}, {"nobody"}}}).Inject(context.Background(), env)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no link crosses the groups")
}
