package harness

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/scenarios"
)

// TestReferenceRoutesMatchValidation keeps the interposer's route proxies and the edges
// validate accepts for the reference system in step: a link fault validate accepts must
// find its proxy, and one it refuses must have none.
func TestReferenceRoutesMatchValidation(t *testing.T) {
	want := scenarios.ReferenceRoutes()
	assert.Len(t, Callers, len(want))
	for callee, callers := range Callers {
		assert.ElementsMatch(t, want[callee], callers, "callers of %s", callee)
	}
	topo := scenarios.ReferenceTopology(scenarios.System{})
	for callee, callers := range Callers {
		for _, caller := range callers {
			assert.NoError(t, topo.CheckEdge(caller, callee), "%s->%s", caller, callee)
		}
	}
	for _, svc := range scenarios.ReferenceServices {
		for _, callee := range []string{"merchant", "product", "order"} {
			if !slices.Contains(Callers[callee], svc) {
				assert.Error(t, topo.CheckEdge(svc, callee), "%s does not call %s by route", svc, callee)
			}
		}
	}
}
