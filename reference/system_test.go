package reference

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/system"
)

// TestPlan: a scenario's system section and a soak's spec both plan the spec the system
// starts from; the command is the given one on the local runtime only (a container runs
// its image's binary), and only a run in containers counts its proxy ports.
func TestPlan(t *testing.T) {
	design := filepath.Join("..", "designs", "server-discovery.yaml")
	tests := []struct {
		name        string
		sys         *System
		container   bool
		wantDesign  string
		wantCommand string
		wantProxies bool
		wantOrders  int
	}{
		{"scenario, local", New(&scenarios.Scenario{}, "/bin/fl", "serve"), false, "default", "/bin/fl", false, 1},
		{"scenario, containers", New(&scenarios.Scenario{}, "/bin/fl"), true, "default", "", true, 1},
		{"soak spec, local", FromSpec(system.Spec{DesignFile: design, Command: "/bin/fl"}), false, "server-discovery", "/bin/fl", false, 0},
		{"soak spec, containers", FromSpec(system.Spec{DesignFile: design, Command: "/bin/fl"}), true, "server-discovery", "", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			got, err := tt.sys.Plan(dir, tt.container)
			require.NoError(t, err)
			assert.Equal(t, tt.wantDesign, got.Design)
			assert.Equal(t, tt.wantProxies, got.Proxies > 0, "proxies %d", got.Proxies)
			assert.Equal(t, tt.wantCommand, tt.sys.spec.Command)
			assert.Equal(t, filepath.Join(dir, "system"), tt.sys.spec.Dir)
			assert.Equal(t, tt.wantOrders, tt.sys.spec.Orders, "a soak keeps the system's default replicas")
		})
	}
}
