package reports

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

// writeShard writes what one shard of a suite writes (JUnit and Markdown of its runs) and
// returns the two paths.
func writeShard(t *testing.T, runs ...*result.Run) (junit, md string) {
	t.Helper()
	dir := t.TempDir()
	var j, m bytes.Buffer
	require.NoError(t, JUnit(&j, runs...))
	require.NoError(t, Markdown(&m, runs...))
	junit, md = filepath.Join(dir, JUnitFile), filepath.Join(dir, MarkdownFile)
	require.NoError(t, os.WriteFile(junit, j.Bytes(), 0o644))
	require.NoError(t, os.WriteFile(md, m.Bytes(), 0o644))
	return junit, md
}

// TestMergeEqualsOneRun: the shards' reports merged are byte for byte what one run of the
// whole suite writes, whatever the split, including a shard of one scenario (the one-run
// Markdown form) and an empty shard.
func TestMergeEqualsOneRun(t *testing.T) {
	a, b, c := fixtureRun(), invalidRun(), expectedRun()
	tests := []struct {
		name   string
		shards [][]*result.Run
	}{
		{"two and one", [][]*result.Run{{a, b}, {c}}},
		{"one, one, one", [][]*result.Run{{a}, {b}, {c}}},
		{"one shard", [][]*result.Run{{a, b, c}}},
		{"an empty shard", [][]*result.Run{{a}, {}, {b, c}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var all []*result.Run
			var junits, mds []string
			for _, sh := range tt.shards {
				all = append(all, sh...)
				j, m := writeShard(t, sh...)
				junits, mds = append(junits, j), append(mds, m)
			}
			var wantJ, wantM, gotJ, gotM bytes.Buffer
			require.NoError(t, JUnit(&wantJ, all...))
			require.NoError(t, Markdown(&wantM, all...))
			worst, err := MergeJUnit(&gotJ, junits...)
			require.NoError(t, err)
			assert.Equal(t, result.Worst(verdicts(all)...), worst, "the merge exits as one run of the whole suite")
			require.NoError(t, MergeMarkdown(&gotM, mds...))
			assert.Equal(t, wantJ.String(), gotJ.String())
			assert.Equal(t, wantM.String(), gotM.String())

			// As a CI reporter reads it: the same suites and test cases.
			var want, got xTestsuites
			require.NoError(t, xml.Unmarshal(wantJ.Bytes(), &want))
			require.NoError(t, xml.Unmarshal(gotJ.Bytes(), &got))
			assert.Equal(t, want, got)
		})
	}
}

func TestMergeErrors(t *testing.T) {
	a, b := fixtureRun(), invalidRun()
	j1, m1 := writeShard(t, a)
	j2, m2 := writeShard(t, a, b)
	dir := t.TempDir()
	notXML := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notXML, []byte("hello\n"), 0o644))
	otherXML := filepath.Join(dir, "pom.xml")
	require.NoError(t, os.WriteFile(otherXML, []byte(`<?xml version="1.0"?><project><name>x</name></project>`), 0o644))
	empty := filepath.Join(dir, "empty.xml")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	missing := filepath.Join(dir, "missing.xml")

	tests := []struct {
		name  string
		merge func(*bytes.Buffer, ...string) error
		paths []string
		want  []string
	}{
		{"junit: not XML", jmerge, []string{j1, notXML}, []string{notXML, "not a JUnit report"}},
		{"junit: other XML", jmerge, []string{otherXML}, []string{otherXML, "not a JUnit report"}},
		{"junit: empty", jmerge, []string{empty}, []string{empty, "not a JUnit report"}},
		{"junit: missing", jmerge, []string{missing}, []string{missing}},
		{"junit: a scenario in two shards", jmerge, []string{j1, j2}, []string{`scenario "dependency-latency" is in both`, j1, j2}},
		{"markdown: not a summary", mmerge, []string{m1, notXML}, []string{notXML, "not a summary"}},
		{"markdown: a JUnit file", mmerge, []string{j1}, []string{j1, "not a summary"}},
		{"markdown: a scenario in two shards", mmerge, []string{m1, m2}, []string{`scenario "dependency-latency" is in both`, m1, m2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := tt.merge(&out, tt.paths...)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func jmerge(w *bytes.Buffer, p ...string) error {
	_, err := MergeJUnit(w, p...)
	return err
}

func verdicts(runs []*result.Run) []result.Verdict {
	var out []result.Verdict
	for _, r := range runs {
		out = append(out, r.Verdict)
	}
	return out
}

// TestMergeVerdictIsTheWorst: the merged verdict is the worst shard's, whichever shard
// holds it, and passed only when every scenario passed.
func TestMergeVerdictIsTheWorst(t *testing.T) {
	passed := fixtureRun()
	passed.Scenario, passed.Verdict = "passing", result.Passed
	failed := fixtureRun()
	failed.Scenario, failed.Verdict = "failing", result.Failed
	invalid := invalidRun()
	tests := []struct {
		name   string
		shards [][]*result.Run
		want   result.Verdict
	}{
		{"all passed", [][]*result.Run{{passed}, {}}, result.Passed},
		{"a failure in the second shard", [][]*result.Run{{passed}, {failed}}, result.Failed},
		{"invalid beats failed", [][]*result.Run{{failed}, {invalid}}, result.Invalid},
		{"empty shards", [][]*result.Run{{}, {}}, result.Passed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var junits []string
			for _, sh := range tt.shards {
				j, _ := writeShard(t, sh...)
				junits = append(junits, j)
			}
			var out bytes.Buffer
			got, err := MergeJUnit(&out, junits...)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
func mmerge(w *bytes.Buffer, p ...string) error { return MergeMarkdown(w, p...) }
