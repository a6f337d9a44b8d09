package checks_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// Every built-in scenario plans into uniquely named checks, each expect_failure names a
// check that is evaluated, and an empty history yields skipped checks, never passes.
func TestBuiltinScenariosEvaluate(t *testing.T) {
	files, err := filepath.Glob("../scenarios/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	empty := writeHistory(t, []history.Event{history.NoteEvent("nothing happened")})
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			sc, err := scenarios.Load(f)
			require.NotNil(t, sc, "%v", err)
			var faults []result.Fault
			for _, fs := range sc.Faults {
				faults = append(faults, result.Fault{Name: fs.Name, Type: fs.Type,
					Injected: result.Duration(fs.At), Healed: result.Duration(fs.End())})
			}
			phases := checks.Phases(sc, faults, 0, sc.Load.Duration.Std())
			got, err := checks.Evaluate(context.Background(), sc, empty, checks.Inputs{Phases: phases, Faults: faults})
			require.NoError(t, err)
			live := checks.LiveChecks(sc, phases)
			require.NotEmpty(t, append(got, make([]result.Check, len(live))...))
			seen := map[string]bool{}
			for _, c := range got {
				assert.False(t, seen[c.Name], "name %q repeats", c.Name)
				seen[c.Name] = true
				assert.False(t, c.Passed, "%s passed on an empty history: %s", c.Name, c.Message)
				assert.NotEmpty(t, c.Message, c.Name)
			}
			if sc.ExpectFailure != nil {
				_, reason, ef := checks.Decide(sc, got, faults, result.Load{})
				require.NotNil(t, ef)
				assert.NotContains(t, reason, "which was not evaluated")
			}
		})
	}
}
