package scenarios_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/scenarios"
)

// TestMarshalRoundTripsCatalog marshals every catalog scenario, parses the text back and
// marshals that again: the second text must equal the first (nothing lost or changed on
// the way through the parser) and the parsed scenario must validate as the original does.
func TestMarshalRoundTripsCatalog(t *testing.T) {
	for _, name := range scenarios.Catalog() {
		t.Run(name, func(t *testing.T) {
			sc, err := scenarios.Builtin(name)
			require.NoError(t, err)
			first, err := scenarios.Marshal(sc)
			require.NoError(t, err)
			back, err := scenarios.Parse(name+".yaml", first)
			require.NoError(t, err, "%s", first)
			assert.Empty(t, back.Validate(scenarios.SystemShape{}), "%s", first)
			second, err := scenarios.Marshal(back)
			require.NoError(t, err)
			assert.Equal(t, string(first), string(second))
			assert.Len(t, back.Faults, len(sc.Faults))
			for i, f := range back.Faults {
				assert.Equal(t, sc.Faults[i].Spec, f.Spec, "fault %s", f.Name)
			}
		})
	}
}
