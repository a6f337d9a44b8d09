package reports

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	p, err := WriteAll(context.Background(), dir, fixtureRun(), fixtureHistory(t))
	require.NoError(t, err)
	assert.Equal(t, Paths{HTML: filepath.Join(dir, "report.html"), Markdown: filepath.Join(dir, "summary.md"), JUnit: filepath.Join(dir, "junit.xml")}, p)

	md, err := os.ReadFile(p.Markdown)
	require.NoError(t, err)
	assert.Contains(t, string(md), "`"+p.HTML+"`", "the summary points at the page just written")
	page, err := os.ReadFile(p.HTML)
	require.NoError(t, err)
	assert.Contains(t, string(page), `<svg class="chart" id="latency"`)
	junit, err := os.ReadFile(p.JUnit)
	require.NoError(t, err)
	assert.Equal(t, 7, parseJUnit(t, junit).Tests)
	left, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	require.NoError(t, err)
	assert.Empty(t, left)
}

func TestWriteAllLeavesNothingOnError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	_, err := WriteAll(context.Background(), dir, fixtureRun(), filepath.Join(dir, "missing.jsonl"))
	require.Error(t, err)
	entries, _ := os.ReadDir(dir)
	assert.Empty(t, entries, "no half set of reports")
}
