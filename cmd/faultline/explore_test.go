package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

// Bad explore invocations are usage errors (exit 3) that say what is wrong, before anything
// starts; failures found exit 1 (a failed check), as a nightly job gates on.
func TestExploreExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no scenario", []string{"explore"}, "one scenario file"},
		{"missing file", []string{"explore", "no-such.yaml"}, "no-such.yaml"},
		{"depth 3", []string{"explore", "../../scenarios/baseline.yaml", "--depth", "3"}, "want 1 or 2"},
		{"hold too short for a latency", []string{"explore", "../../scenarios/baseline.yaml", "--hold", "1s"}, "too short"},
		{"unknown kind", []string{"explore", "../../scenarios/baseline.yaml", "--kinds", "latency,meteor"}, `"meteor"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, tt.args...)
			require.Error(t, err)
			assert.Equal(t, result.ExitError, exitCode(err), "err: %v", err)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	assert.Equal(t, result.ExitFailed, exitCode(&exploreFailedError{n: 2, dir: "d"}))
}
