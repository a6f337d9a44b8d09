package checks_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/scenarios"
)

// TestChecksDocCoversEveryKind fails when a registered check kind has no row in
// docs/CHECKS.md, when a row names a kind that is not registered, or when a row points at
// a proof that does not exist: the table and the registry cannot drift apart. A kind that
// a system's own package registers (the reference system's consistency) is not known
// here: its row names that package, whose tests hold the row to its proofs.
func TestChecksDocCoversEveryKind(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "CHECKS.md"))
	require.NoError(t, err)
	rows, elsewhere := map[string]string{}, map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := regexp.MustCompile("^\\| `([a-z_]+)` \\|").FindStringSubmatch(line); m != nil {
			rows[m[1]] = line
		}
		if m := regexp.MustCompile("^\\| `([a-z_]+)` \\(registered by `([a-z/]+)`\\) \\|").FindStringSubmatch(line); m != nil {
			elsewhere[m[1]] = m[2]
		}
	}
	kinds := scenarios.CheckKinds()
	ps := proofs()
	for _, kind := range kinds {
		row, ok := rows[kind]
		if !assert.True(t, ok, "docs/CHECKS.md has no row for check kind %q", kind) {
			continue
		}
		refs := regexp.MustCompile("`TestCheckProofs/([a-z_]+)/([^`]+)`").FindAllStringSubmatch(row, -1)
		assert.NotEmpty(t, refs, "the row of %q points at no proof", kind)
		for _, ref := range refs {
			assert.Equal(t, kind, ref[1], "the row of %q points at another kind's proof", kind)
			assert.True(t, hasProof(ps[kind], ref[2]), "the row of %q points at %q, which is not a proof of %q", kind, ref[2], kind)
		}
	}
	for kind := range rows {
		assert.Contains(t, kinds, kind, "docs/CHECKS.md has a row for %q, which is not a registered kind", kind)
	}
	for kind, pkg := range elsewhere {
		assert.NotContains(t, kinds, kind, "the row of %q says %s registers it, but it is built in", kind, pkg)
		assert.DirExists(t, filepath.Join("..", pkg), "the row of %q names %s, which does not exist", kind, pkg)
	}
}

// hasProof matches a subtest name as go test prints it (spaces as underscores).
func hasProof(ps []proof, name string) bool {
	for _, p := range ps {
		if strings.ReplaceAll(p.name, " ", "_") == name {
			return true
		}
	}
	return false
}
