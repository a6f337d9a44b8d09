package harness_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/systems"
)

// TestStartErrorNamesTheComponentOnce: the runtime's error already says "start lb:", and
// the harness said it again ("start lb: start lb: ...").
func TestStartErrorNamesTheComponentOnce(t *testing.T) {
	sc := loadTestdata(t, "custom/no-such-command.yaml")
	dir := t.TempDir()
	res, _ := harness.Run(t.Context(), sc, harness.WithSystemFor(systems.For), harness.WithDir(dir))
	require.NotNil(t, res)
	assert.Equal(t, result.Error, res.Verdict, res.Reason)
	require.Contains(t, res.Reason, "start lb:")
	assert.Equal(t, 1, strings.Count(res.Reason, "start lb:"), "reason: %s", res.Reason)
}
