package harness_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/systems"
)

// withHTTPD builds the test's tiny HTTP server and puts it first in PATH, where the
// custom scenarios' "command: httpd" finds it.
func withHTTPD(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "httpd"), "./testdata/custom/httpd").CombinedOutput()
	require.NoError(t, err, "build httpd: %s", out)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// assertAllStopped checks that no process the run started is still alive.
func assertAllStopped(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, harness.ProcessesFile))
	require.NoError(t, err)
	var recs []harness.ProcessRecord
	require.NoError(t, json.Unmarshal(b, &recs))
	require.NotEmpty(t, recs)
	for _, p := range recs {
		require.Positive(t, p.PID, p.Name)
		err := syscall.Kill(p.PID, 0)
		assert.True(t, errors.Is(err, syscall.ESRCH), "%s (pid %d) is still running", p.Name, p.PID)
	}
}

func TestCustomTopologyLinkFaultOnDeclaredLinkLands(t *testing.T) {
	withHTTPD(t)
	sc := loadTestdata(t, "custom/link-latency.yaml")
	res, dir := runScenario(t, sc)

	assert.Equal(t, result.Passed, res.Verdict, res.Reason) // the p50 bound fails as expected
	require.Len(t, res.Faults, 1)
	eff := res.Faults[0].Effect
	require.NotNil(t, eff)
	assert.True(t, eff.Landed, "latency on web->api did not land: %+v", eff)
	assert.InDelta(t, 300, eff.Measured, 150, "measured added latency, ms")
	assert.Contains(t, res.Links, result.Link{From: "web", To: "api"})
	byName := map[string]result.Check{}
	for _, c := range res.Checks {
		byName[c.Name] = c
	}
	assert.True(t, byName["web-counted"].Passed, "metric scraped from web's own endpoint: %+v", byName["web-counted"])
	assert.True(t, byName["api-serves"].Passed, "probe rendered with the api's address: %+v", byName["api-serves"])
	assert.False(t, byName["slowed"].Passed, "calls through web->api were slowed by the fault")
	assert.FileExists(t, filepath.Join(dir, "logs", "web.log"))
	assertAllStopped(t, dir)
}

func TestCustomTopologyCrashKillsAndHealRestarts(t *testing.T) {
	withHTTPD(t)
	sc := loadTestdata(t, "custom/crash.yaml")
	res, dir := runScenario(t, sc)

	assert.Equal(t, result.Passed, res.Verdict, res.Reason)
	require.Len(t, res.Faults, 1)
	require.NotNil(t, res.Faults[0].Effect)
	assert.True(t, res.Faults[0].Effect.Landed, "%+v", res.Faults[0].Effect)
	assertAllStopped(t, dir)
}

func TestCustomTopologyRefusesAbsentComponentAndReferenceChecks(t *testing.T) {
	sc := loadTestdata(t, "custom/absent.yaml")
	res, err := harness.Run(t.Context(), sc, harness.WithSystemFor(systems.For), harness.WithDir(t.TempDir()))
	var verr *harness.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, result.Error, res.Verdict)
	var msgs []string
	for _, e := range verr.Errs {
		msgs = append(msgs, e.Error())
	}
	file := filepath.Join("testdata", "custom", "absent.yaml")
	assert.Contains(t, msgs[0], file+":18:44: faults[0]: target \"db\" is not in the topology")
	assert.Contains(t, msgs[1], file+":21:7: expect.overall[0]: consistency applies only to the reference system")
	assert.Len(t, msgs, 2)
}
