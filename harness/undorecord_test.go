package harness_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/systems"
	"github.com/faultline-dev/faultline/undo"
)

func TestAbortWhenStopsTheRunAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole system")
	}
	undoDir := t.TempDir()
	t.Setenv(undo.DirEnv, undoDir)
	sc, err := scenarios.Parse("abort.yaml", []byte(`name: abort-test
description: >-
  product refuses the gateway, so about a quarter of browsing fails (the rest is served
  without product) and the stop condition fires.
seed: 5
load:
  rate: 20/s
  duration: 14s
  clients: 2
  mix: {browse: 1}
faults:
  - name: product-down
    type: down
    at: 2s
    for: 10s
    target: gateway->product
abort_when:
  - check: error_rate
    name: too-many-errors
    max: 10%
`))
	require.NoError(t, err)
	res, _ := runScenario(t, sc)

	assert.Equal(t, result.Aborted, res.Verdict, "reason: %s", res.Reason)
	assert.Equal(t, 4, res.Verdict.ExitCode())
	assert.Contains(t, res.Reason, "too-many-errors")
	require.NotEmpty(t, res.Checks)
	c := res.Checks[len(res.Checks)-1]
	assert.Equal(t, "too-many-errors", c.Name)
	assert.False(t, c.Passed)
	assert.Greater(t, c.Figure, 0.1)
	require.Len(t, res.Faults, 1)
	f := res.Faults[0]
	require.NotZero(t, f.Injected)
	require.NotZero(t, f.Healed, "the fault was healed")
	assert.Less(t, f.Healed.Std(), f.Injected.Std()+8*time.Second, "healed when the condition fired, not at its planned end 10 s after injection")
	assert.Less(t, res.Load.Requests, int64(14*20*9/10), "the load stopped early")
	left, err := undo.Pending(undoDir)
	require.NoError(t, err)
	assert.Empty(t, left, "a run that ended cleanly removes its undo record")
}

func TestRefusesAFaultOutsideTheTopology(t *testing.T) {
	undoDir := t.TempDir()
	t.Setenv(undo.DirEnv, undoDir)
	sc, err := scenarios.Parse("outside.yaml", []byte(`name: outside
description: a fault aimed at a component the system does not have.
load:
  rate: 5/s
  duration: 3s
  mix: {browse: 1}
faults:
  - name: elsewhere
    type: latency
    at: 1s
    for: 1s
    target: gateway->payments
    latency: 100ms
`))
	require.NoError(t, err)
	res, err := harness.Run(t.Context(), sc, harness.WithSystemFor(systems.For), harness.WithDir(t.TempDir()))
	var ve *harness.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, result.Error, res.Verdict)
	assert.True(t, strings.Contains(err.Error(), "payments"), err.Error())
	left, err := undo.Pending(undoDir)
	require.NoError(t, err)
	assert.Empty(t, left, "nothing was started, so nothing was recorded")
}
