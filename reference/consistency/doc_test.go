package consistency_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckDocRow holds the kind's row of docs/CHECKS.md to this package: the row names
// it as the kind's registrar, and every proof it points at is a case of
// TestConsistencyProofs (the checks package holds the built-in kinds' rows the same way).
func TestCheckDocRow(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "CHECKS.md"))
	require.NoError(t, err)
	var row string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `consistency` (registered by `reference/consistency`) |") {
			row = line
		}
	}
	require.NotEmpty(t, row, "docs/CHECKS.md has no row for consistency naming reference/consistency")
	src, err := os.ReadFile("proofs_test.go")
	require.NoError(t, err)
	refs := regexp.MustCompile("`TestConsistencyProofs/([^`]+)`").FindAllStringSubmatch(row, -1)
	require.NotEmpty(t, refs, "the row points at no proof")
	for _, ref := range refs {
		assert.Contains(t, string(src), `{"`+restore(ref[1])+`", `, "the row points at %q, which is not a case of TestConsistencyProofs", ref[1])
	}
}

// restore turns a subtest name as go test prints it back into the case's name: spaces
// were printed as underscores, property names keep theirs.
func restore(printed string) string {
	prop, rest, ok := strings.Cut(printed, ":")
	if !ok {
		return strings.ReplaceAll(printed, "_", " ")
	}
	return prop + ":" + strings.ReplaceAll(rest, "_", " ")
}
