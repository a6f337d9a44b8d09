package console_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/scenarios"
)

// TestConsoleMixLive changes the journeys' weights while the load runs on the reference
// system: the per-journey throughput follows at once (the journey taken out stops, the one
// put in starts), a bad mix is refused and changes nothing, and the export carries the
// change as a ramp step with its own mix.
func TestConsoleMixLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the reference system")
	}
	c, _ := startBaseline(t)

	journeys := func() map[string]float64 {
		out := map[string]float64{}
		if l := c.State().Load; l != nil {
			for name, f := range l.Now.Journeys {
				out[name] = f.Throughput
			}
		}
		return out
	}
	require.NoError(t, c.SetMix(map[string]float64{"browse": 1}))
	require.NoError(t, c.StartLoad(40))
	require.Eventually(t, func() bool { j := journeys(); return j["browse"] > 10 && j["place_order"] == 0 },
		15*time.Second, 100*time.Millisecond, "browse only: %v", journeys())

	assert.ErrorContains(t, c.SetMix(map[string]float64{"checkout": 1}), `"checkout" is not a journey`)
	assert.Equal(t, map[string]float64{"browse": 1}, c.State().Mix, "a refused mix changes nothing")

	require.NoError(t, c.SetMix(map[string]float64{"place_order": 1}))
	assert.Equal(t, 40, c.State().Load.Rate, "the rate kept")
	// The figures' window is 2 s: once it has passed, only the new journey is in it.
	require.Eventually(t, func() bool { j := journeys(); return j["place_order"] > 10 && j["browse"] == 0 },
		15*time.Second, 100*time.Millisecond, "place_order only: %v", journeys())

	rec, err := c.Export(time.Now())
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"browse": 1}, rec.Load.Mix)
	require.Len(t, rec.Load.Ramp, 2)
	assert.Nil(t, rec.Load.Ramp[0].Mix)
	assert.Equal(t, map[string]float64{"place_order": 1}, rec.Load.Ramp[1].Mix)
	assert.Equal(t, scenarios.Rate{Freq: 40, Per: time.Second}, rec.Load.Ramp[1].Rate)
}
