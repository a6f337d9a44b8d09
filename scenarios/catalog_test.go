package scenarios

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wantCatalog is the catalog the product brief promises, one teaching point each.
var wantCatalog = []string{
	"baseline", "broker-outage", "broker-outage-no-outbox", "cascading-failure-no-breaker", "cascading-failure-with-breaker",
	"dependency-latency", "duplicate-delivery", "duplicate-delivery-no-idempotency", "gateway-crash-single", "gateway-crash-two-gateways",
	"gateway-overload", "partition-order-broker", "partition-order-product", "registry-outage",
	"replica-crash", "retry-storm-no-budget", "retry-storm-with-budget", "slow-consumer", "sync-inventory-give-ups",
}

// weakPairs maps each scenario that demonstrates a weak design to its stronger twin.
var weakPairs = map[string]string{
	"cascading-failure-no-breaker": "cascading-failure-with-breaker",
	"retry-storm-no-budget":        "retry-storm-with-budget",
	"gateway-crash-single":         "gateway-crash-two-gateways",
	// Each weak design loses exactly the property its twin keeps, and its expect_failure
	// names that anomaly (lost events, doubly applied events).
	"broker-outage-no-outbox":           "broker-outage",
	"duplicate-delivery-no-idempotency": "duplicate-delivery",
}

func TestCatalogListsEveryPromisedScenario(t *testing.T) {
	assert.Equal(t, wantCatalog, Catalog())
}

// TestCatalogValidates parses every built-in scenario with the real fault registry and the
// reference topology: a catalog file that does not validate is a bug users hit first.
func TestCatalogValidates(t *testing.T) {
	var total time.Duration
	for _, name := range Catalog() {
		t.Run(name, func(t *testing.T) {
			s, err := Builtin(name)
			require.NoError(t, err)
			require.Empty(t, s.Validate(SystemShape{}))
			assert.Equal(t, name, s.Name, "name matches the file name")
			assert.GreaterOrEqual(t, len(strings.Fields(s.Description)), 25, "the description explains what it teaches")
			assert.LessOrEqual(t, s.Load.Duration.Std(), 12*time.Second, "keeps the catalog within its time budget")
			if s.System.Design.Path != "" {
				_, err := os.Stat(filepath.Join("..", s.System.Design.Path))
				assert.NoError(t, err, "design file exists")
			}
			for _, f := range s.Faults {
				assert.NotNil(t, f.Spec, "fault %s decoded into the registry's type", f.Name)
			}
			_, weak := weakPairs[name]
			assert.Equal(t, weak, s.ExpectFailure != nil, "only weak-design scenarios expect a failure")
			total += s.Load.Duration.Std()
		})
	}
	// 151 s: the crash scenarios run 8 s, not 7, so that the steady state after a container
	// runtime's restart (1.3-2 s of readiness wait on Docker) still has requests to judge.
	assert.LessOrEqual(t, total, 155*time.Second, "load time of the whole catalog")
}

// TestCatalogWeakDesignsHaveAPair checks that every scenario expecting a failure has a
// counterpart with the same faults and load that expects none, so the comparison is fair.
func TestCatalogWeakDesignsHaveAPair(t *testing.T) {
	for weak, strong := range weakPairs {
		w, err := Builtin(weak)
		require.NoError(t, err)
		s, err := Builtin(strong)
		require.NoError(t, err)
		require.NotNil(t, w.ExpectFailure, weak)
		assert.Nil(t, s.ExpectFailure, strong)
		assert.Equal(t, w.Load.Rate, s.Load.Rate, "%s load", weak)
		assert.Equal(t, w.Load.Mix, s.Load.Mix, "%s mix", weak)
		assert.Equal(t, w.Seed, s.Seed, "%s seed", weak)
		require.Len(t, s.Faults, len(w.Faults))
		for i := range w.Faults {
			assert.Equal(t, w.Faults[i].Spec, s.Faults[i].Spec, "%s fault %d", weak, i)
		}
	}
}

// BenchmarkParseValidate measures parsing and validating the whole catalog, which the CLI
// does before every run.
func BenchmarkParseValidate(b *testing.B) {
	files := map[string][]byte{}
	for _, name := range Catalog() {
		data, err := CatalogFile(name)
		require.NoError(b, err)
		files[name] = data
	}
	b.ReportAllocs()
	for b.Loop() {
		for name, data := range files {
			s, err := Parse(name, data)
			if err != nil || len(s.Validate(SystemShape{})) > 0 {
				b.Fatal(name, err)
			}
		}
	}
}
