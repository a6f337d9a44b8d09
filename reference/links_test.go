package reference_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/system"
)

// TestImportRegistersTheDefaultSystem: importing the package is what gives scenarios the
// system to validate a topology-less scenario against, with these services in this order.
func TestImportRegistersTheDefaultSystem(t *testing.T) {
	got, ok := scenarios.RegisteredDefault()
	require.True(t, ok)
	var names []string
	for _, s := range got.Services {
		names = append(names, s.Name)
		assert.NotEmpty(t, s.Doc, "%s is documented", s.Name)
	}
	assert.Equal(t, reference.Services(), names)
	assert.Equal(t, []string{"registry", "broker", "merchant", "product", "order", "balancer", "gateway"}, names)
	assert.Equal(t, []string{"merchant", "order", "product"}, got.Replicated)
	assert.Equal(t, 3, scenarios.System{Replicas: map[string]int{"order": 3}}.ReplicasOf("order"))
	assert.Equal(t, 1, scenarios.System{Replicas: map[string]int{"broker": 3}}.ReplicasOf("broker"), "the broker runs once")
}

// TestValidationUsesTheRegisteredLinks: a link fault validates exactly when the link is one
// the interposer builds a route proxy for (reference.CallersOf), read from the one list.
func TestValidationUsesTheRegisteredLinks(t *testing.T) {
	tests := []struct {
		target string
		want   string // empty: valid
	}{
		{"gateway->product", ""},
		{"balancer->order", ""},
		{"order->merchant", ""},
		{"order-2->registry", ""},
		{"merchant->product", "no link merchant->product: merchant does not call product"},
		{"product->order", "no link product->order: product does not call order"},
		{"order-3->registry", `target "order-3" is not in the topology`},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			src := `name: x
description: one link fault
system: {replicas: {order: 2}}
load: {rate: 10/s, duration: 5s, mix: {browse: 1}}
faults:
  - {name: f, type: latency, at: 1s, for: 2s, latency: 50ms, target: ` + tt.target + `}
`
			sc, err := scenarios.Parse("x.yaml", []byte(src))
			require.NoError(t, err)
			var got []string
			for _, e := range sc.Validate(scenarios.SystemShape{}) {
				got = append(got, e.Error())
			}
			if tt.want == "" {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1, "%q", got)
			assert.Contains(t, got[0], tt.want)
		})
	}
}

// TestRoutesMatchValidation keeps the interposer's route proxies and the edges validate
// accepts in step: a link fault validate accepts must find its proxy, and one it refuses
// must have none.
func TestRoutesMatchValidation(t *testing.T) {
	shape := scenarios.DefaultShape(scenarios.System{})
	assert.Equal(t, []string{"merchant", "order", "product"}, reference.Routed())
	for _, callee := range reference.Routed() {
		callers := reference.CallersOf(callee)
		require.NotEmpty(t, callers, callee)
		for _, caller := range callers {
			assert.NoError(t, shape.CheckEdge(caller, callee), "%s->%s", caller, callee)
		}
		for _, svc := range reference.Services() {
			if !slices.Contains(callers, svc) {
				assert.Error(t, shape.CheckEdge(svc, callee), "%s does not call %s by route", svc, callee)
			}
		}
	}
	assert.Nil(t, reference.CallersOf("registry"), "the registry is dialled per instance, not by route")
}

// recordingInterposer records every (caller, target) a system plans a proxy for.
type recordingInterposer struct{ asked []string }

func (r *recordingInterposer) Interpose(c system.Component, target, addr string) (string, error) {
	r.asked = append(r.asked, c.Name+"->"+target)
	return addr, nil
}

// TestSharedLinksMatchValidation: the per-instance links to the registry, the broker and
// the balancer that a planned reference system asks for are exactly the ones validate
// accepts. A closed runtime lets the plan finish and starts nothing.
func TestSharedLinksMatchValidation(t *testing.T) {
	rt := local.New()
	require.NoError(t, rt.Close(t.Context()))
	ip := &recordingInterposer{}
	spec := system.Spec{Dir: t.TempDir(), Merchants: 1, Orders: 2, Products: 2, Gateways: 2, DesignFile: filepath.Join("..", "designs", "server-discovery.yaml")}
	_, err := system.Start(t.Context(), rt, spec, system.WithInterposer(ip))
	require.Error(t, err, "a closed runtime starts nothing")
	require.Contains(t, ip.asked, "gateway-2->balancer-1", "the server-side design plans the balancer")
	require.Contains(t, ip.asked, "balancer-1->registry-1")

	shape := scenarios.DefaultShape(scenarios.System{Replicas: map[string]int{"merchant": 1, "order": 2, "product": 2}, Gateways: 2})
	var want []string
	for _, e := range shape.Edges {
		if e.FromService != "" {
			want = append(want, e.From+"->"+e.To)
		}
	}
	assert.ElementsMatch(t, want, ip.asked)
}
