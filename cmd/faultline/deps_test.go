package main

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/faultline-dev/faultline/"

// deps lists the packages of this module that pkg depends on, directly or not, as paths
// relative to the module ("harness", "reports").
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies with")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", module+pkg).Output()
	require.NoError(t, err, "go list -deps %s", pkg)
	var own []string
	for _, p := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(p, module); ok && rest != pkg {
			own = append(own, rest)
		}
	}
	return own
}

// TestDependencyRules pins the package boundaries: crash recovery heals without the
// runner, the runner and the comparison produce data that reports render without
// importing reports, and reports render without running anything.
func TestDependencyRules(t *testing.T) {
	tests := []struct {
		pkg    string
		forbid []string
	}{
		// The pipeline runs any system under test and names none: the reference system's
		// adapter, its supervisor and a topology's live outside it.
		{"harness", []string{"reports", "compare", "cmd/faultline", "reference", "system", "topology/run", "systems", "soak", "console"}},
		{"sut", []string{"harness", "reference", "system", "topology/run"}},
		// The reference system's consistency kind is registered as a user's own kind is:
		// it judges a state and runs nothing, so a scenario validates without the runner.
		{"reference/consistency", []string{"harness", "reference", "system", "topology/run", "systems", "reports"}},
		{"soak", []string{"reports", "compare", "cmd/faultline"}},
		// The console steers any system under test through the pipeline's start step; the
		// command picks the system.
		{"console", []string{"reference", "system", "topology/run", "systems", "reports", "compare", "cmd/faultline"}},
		// Explore searches any system under test through the pipeline; the command picks it.
		{"explore", []string{"reference", "system", "topology/run", "systems", "reports", "compare", "cmd/faultline", "soak", "console"}},
		{"undo", []string{"harness", "compare", "reports", "checks", "loadgen", "system", "topology"}},
		{"compare", []string{"reports"}},
		{"reports", []string{"harness", "compare", "undo"}},
		{"result", []string{"harness", "compare", "reports", "undo"}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			got := deps(t, tt.pkg)
			for _, f := range tt.forbid {
				assert.NotContains(t, got, f, "%s must not depend on %s", tt.pkg, f)
			}
		})
	}
}

// TestFrameworkDoesNotImportTheReferenceSystem: the framework packages learn the reference
// system through the reference package, which depends on them and not the other way, so
// that a user's own system meets no part of the shop.
func TestFrameworkDoesNotImportTheReferenceSystem(t *testing.T) {
	for _, pkg := range []string{"checks", "loadgen", "faults", "scenarios", "harness", "sut", "observe", "history", "result"} {
		t.Run(pkg, func(t *testing.T) {
			for _, d := range deps(t, pkg) {
				assert.False(t, d == "reference" || strings.HasPrefix(d, "reference/") || strings.HasPrefix(d, "reference-services/"),
					"%s depends on %s", pkg, d)
			}
		})
	}
}

// TestHealFilesDoNotImportTheRunner: the commands that only heal a dead run's leftovers
// (clean and the heal-on-start hook in clean.go, the Docker reaper in reap.go) must not
// need the runner, so that healing works whatever state the runner's code is in.
func TestHealFilesDoNotImportTheRunner(t *testing.T) {
	for _, file := range []string{"clean.go", "reap.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Clean(file), nil, parser.ImportsOnly)
		require.NoError(t, err)
		var imports []string
		for _, im := range f.Imports {
			p, err := strconv.Unquote(im.Path.Value)
			require.NoError(t, err)
			imports = append(imports, p)
		}
		for _, forbid := range []string{"harness", "compare", "reports"} {
			assert.False(t, slices.Contains(imports, module+forbid), "%s imports %s", file, forbid)
		}
	}
}
