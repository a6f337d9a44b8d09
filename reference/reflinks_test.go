package reference

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/system"
)

// TestReferenceRoutesMatchValidation keeps the interposer's route proxies and the edges
// validate accepts for the reference system in step: a link fault validate accepts must
// find its proxy, and one it refuses must have none.
func TestReferenceRoutesMatchValidation(t *testing.T) {
	want := scenarios.ReferenceRoutes()
	assert.Len(t, routeCallers, len(want))
	for callee, callers := range routeCallers {
		assert.ElementsMatch(t, want[callee], callers, "callers of %s", callee)
	}
	topo := scenarios.ReferenceTopology(scenarios.System{})
	for callee, callers := range routeCallers {
		for _, caller := range callers {
			assert.NoError(t, topo.CheckEdge(caller, callee), "%s->%s", caller, callee)
		}
	}
	for _, svc := range scenarios.ReferenceServices {
		for _, callee := range []string{"merchant", "product", "order"} {
			if !slices.Contains(routeCallers[callee], svc) {
				assert.Error(t, topo.CheckEdge(svc, callee), "%s does not call %s by route", svc, callee)
			}
		}
	}
}

// recordingInterposer records every (caller, target) a system plans a proxy for.
type recordingInterposer struct{ asked []string }

func (r *recordingInterposer) Interpose(c system.Component, target, addr string) (string, error) {
	r.asked = append(r.asked, c.Name+"->"+target)
	return addr, nil
}

// TestReferenceSharedLinksMatchValidation: the per-instance links to the registry, the
// broker and the balancer that a planned reference system asks for are exactly the ones
// validate accepts. A closed runtime lets the plan finish and starts nothing.
func TestReferenceSharedLinksMatchValidation(t *testing.T) {
	rt := local.New()
	require.NoError(t, rt.Close(t.Context()))
	ip := &recordingInterposer{}
	spec := system.Spec{Dir: t.TempDir(), Merchants: 1, Orders: 2, Products: 2, Gateways: 2, DesignFile: filepath.Join("..", "designs", "server-discovery.yaml")}
	_, err := system.Start(t.Context(), rt, spec, system.WithInterposer(ip))
	require.Error(t, err, "a closed runtime starts nothing")
	require.Contains(t, ip.asked, "gateway-2->balancer-1", "the server-side design plans the balancer")
	require.Contains(t, ip.asked, "balancer-1->registry-1")

	topo := scenarios.ReferenceTopology(scenarios.System{Replicas: map[string]int{"merchant": 1, "order": 2, "product": 2}, Gateways: 2})
	var want []string
	for _, e := range topo.Edges {
		if e.FromService != "" {
			want = append(want, e.From+"->"+e.To)
		}
	}
	assert.ElementsMatch(t, want, ip.asked)
}
