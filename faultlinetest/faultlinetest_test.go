package faultlinetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

// recorder is a testing.TB that records what Run reports instead of failing.
type recorder struct {
	testing.TB
	errors []string
	fatal  bool
}

func (r *recorder) Helper()                   {}
func (r *recorder) Log(...any)                {}
func (r *recorder) Logf(string, ...any)       {}
func (r *recorder) Errorf(f string, a ...any) { r.errors = append(r.errors, fmt.Sprintf(f, a...)) }
func (r *recorder) Fatalf(f string, a ...any) { r.Errorf(f, a...); r.fatal = true }
func (r *recorder) FailNow()                  { r.fatal = true }
func (r *recorder) TempDir() string           { return r.TB.TempDir() }

func TestReportFailsOnceForEachFailedCheckWithItsFigures(t *testing.T) {
	res := &result.Run{Scenario: "s", Verdict: result.Failed, Reason: "a check failed", Checks: []result.Check{
		{Name: "ok", Passed: true, Figure: 1, Op: "<=", Threshold: 2},
		{Name: "error rate", Figure: 0.2, Op: "<=", Threshold: 0.05, Unit: "ratio", Message: "20% of requests failed"},
		{Name: "probe", Skipped: true, Message: "no answer"},
	}}
	rec := &recorder{TB: t}
	Report(rec, res)
	want := []string{
		"check error rate: figure 0.2 ratio <= threshold 0.05 ratio — 20% of requests failed",
		"check probe: skipped — no answer",
	}
	assert.Equal(t, want, rec.errors)
}

func TestReportPassesAPassedRun(t *testing.T) {
	rec := &recorder{TB: t}
	Report(rec, &result.Run{Scenario: "s", Verdict: result.Passed, Checks: []result.Check{{Name: "ok", Passed: true}}})
	assert.Empty(t, rec.errors)
}

func TestReportFailsAnInvalidRunWithItsReason(t *testing.T) {
	rec := &recorder{TB: t}
	Report(rec, &result.Run{Scenario: "s", Verdict: result.Invalid, Reason: "fault x did not land", Hint: "look"})
	require.Len(t, rec.errors, 1)
	assert.Equal(t, "faultline: s: verdict invalid: fault x did not land (hint: look)", rec.errors[0])
}

func TestRunRefusesAComponentAbsentFromTheTopologyWithFileLine(t *testing.T) {
	rec := &recorder{TB: t}
	res := Run(rec, "testdata/absent-component.yaml")
	assert.Nil(t, res, "nothing runs")
	assert.True(t, rec.fatal)
	require.NotEmpty(t, rec.errors)
	assert.Contains(t, strings.Join(rec.errors, "\n"), `testdata/absent-component.yaml:18:43: faults[0]: target "db" is not in the topology`)
}

// TestUserModule runs the tests of a separate module that uses this package the way a
// team would, through its own go.mod (replace pointing at this checkout).
func TestUserModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs another module's tests")
	}
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "test", "-count=1", "./...")
	cmd.Dir = filepath.Join("testdata", "usermod")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go test in %s:\n%s", cmd.Dir, out)
	assert.Contains(t, string(out), "ok  \texample.com/usermod")
}
