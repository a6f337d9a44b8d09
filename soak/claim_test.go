package soak_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/soak"
)

// TestSoakRefusesADirectoryInUse: a soak starts a whole system in its directory, so a
// directory another process holds is refused before anything starts.
func TestSoakRefusesADirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	release, err := harness.ClaimDir(dir)
	require.NoError(t, err)
	defer release()
	_, err = soak.Soak(t.Context(), soak.SoakSpec{Duration: time.Minute}, harness.WithDir(dir))
	var inUse *harness.DirInUseError
	require.ErrorAs(t, err, &inUse)
}
