package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/reports"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/undo"
)

var catalogDir = filepath.Join("..", "..", "scenarios")

func lines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestSuiteList: --list prints the whole catalog without --shard, and with --shard K/N
// the shards' lists together hold every file exactly once.
func TestSuiteList(t *testing.T) {
	out, err := run(t, "suite", catalogDir, "--list")
	require.NoError(t, err, out)
	want, err := filepath.Glob(filepath.Join(catalogDir, "*.yaml"))
	require.NoError(t, err)
	assert.Equal(t, want, lines(out))

	for n := 1; n <= 5; n++ {
		var got []string
		for k := 1; k <= n; k++ {
			out, err := run(t, "suite", catalogDir, "--shard", strconv.Itoa(k)+"/"+strconv.Itoa(n), "--list")
			require.NoError(t, err, out)
			shard := lines(out)
			assert.NotEmpty(t, shard, "shard %d/%d", k, n)
			got = append(got, shard...)
		}
		slices.Sort(got)
		assert.Equal(t, want, got, "N=%d: every scenario in exactly one shard", n)
	}

	fromDir, err := run(t, "suite", catalogDir, "--shard", "2/3", "--list")
	require.NoError(t, err)
	args := append([]string{"suite", "--shard", "2/3", "--list"}, want[5:]...)
	args = append(args, want[:5]...)
	fromFiles, err := run(t, args...)
	require.NoError(t, err)
	a, b := lines(fromDir), lines(fromFiles)
	slices.Sort(a)
	slices.Sort(b)
	assert.Equal(t, a, b, "the same files give the same shard, in whatever order they are named")
}

func TestSuiteShardUsageErrors(t *testing.T) {
	tests := []struct {
		shard string
		want  string
	}{
		{"0/2", "K must be between 1 and N (2)"},
		{"3/2", "K must be between 1 and N (2)"},
		{"1/0", "N must be at least 1"},
		{"a/b", "whole numbers"},
		{"2", "want K/N"},
	}
	for _, tt := range tests {
		t.Run(tt.shard, func(t *testing.T) {
			_, err := run(t, "suite", catalogDir, "--shard", tt.shard, "--list")
			require.Error(t, err)
			var ue *usageError
			assert.ErrorAs(t, err, &ue)
			assert.Equal(t, result.ExitError, exitCode(err))
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), "such as --shard 1/2", "the error carries a hint")
		})
	}
}

func TestReportMergeUsageErrors(t *testing.T) {
	dir := t.TempDir()
	notJUnit := filepath.Join(dir, "notes.xml")
	require.NoError(t, os.WriteFile(notJUnit, []byte("<notes/>"), 0o644))
	shard := filepath.Join(dir, "shard")
	require.NoError(t, os.MkdirAll(shard, 0o755))
	var j bytes.Buffer
	require.NoError(t, reports.JUnit(&j, &result.Run{Scenario: "baseline", Verdict: result.Passed,
		Checks: []result.Check{{Name: "overall/throughput", Phase: "overall", Passed: true}}}))
	require.NoError(t, os.WriteFile(filepath.Join(shard, reports.JUnitFile), j.Bytes(), 0o644))

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no arguments", []string{"report", "--merge"}, []string{"--merge needs"}},
		{"not JUnit", []string{"report", "--merge", shard, notJUnit, "--out", t.TempDir()}, []string{notJUnit, "not a JUnit report"}},
		{"a scenario in two shards", []string{"report", "--merge", shard, filepath.Join(shard, reports.JUnitFile), "--out", t.TempDir()}, []string{`scenario "baseline" is in both`}},
		{"missing shard", []string{"report", "--merge", filepath.Join(dir, "nope"), "--out", t.TempDir()}, []string{filepath.Join(dir, "nope")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, tt.args...)
			require.Error(t, err)
			assert.Equal(t, result.ExitError, exitCode(err))
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// junitCases reads a JUnit file as a CI reporter does and returns its test cases as
// "suite | classname | name", sorted. The "verdict" case is left out: it is written only
// when a run was invalid, aborted or errored, a property of that run on a loaded machine,
// not of how the suite was split.
func junitCases(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc struct {
		Suites []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(data, &doc))
	var out []string
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			if c.Name != "verdict" {
				out = append(out, s.Name+" | "+c.Classname+" | "+c.Name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestSuiteShardsMergeToOneRun runs a small suite whole and as shards 1/2 and 2/2, merges
// the shards' reports and checks the merge has exactly the test cases of the whole run.
func TestSuiteShardsMergeToOneRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two catalog scenarios twice (~1 min)")
	}
	bin := faultlineBinary(t)
	suiteDir := t.TempDir()
	for _, f := range []string{"baseline.yaml", "sync-inventory-give-ups.yaml"} {
		data, err := os.ReadFile(filepath.Join(catalogDir, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(suiteDir, f), data, 0o644))
	}
	env := append(os.Environ(), undo.DirEnv+"="+t.TempDir())
	work := t.TempDir()
	code := map[string]int{} // exit code by the first argument after the command
	faultline := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		code[args[0]+" "+args[1]] = cmd.ProcessState.ExitCode()
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() != result.ExitError {
			err = nil // a verdict; the test is about which cases ran, not whether they passed
		}
		require.NoError(t, err, "faultline %s:\n%s", strings.Join(args, " "), out)
		return string(out)
	}

	l1 := lines(faultline("suite", suiteDir, "--shard", "1/2", "--list"))
	l2 := lines(faultline("suite", suiteDir, "--shard", "2/2", "--list"))
	require.Len(t, l1, 1)
	require.Len(t, l2, 1)
	assert.NotEqual(t, l1, l2)

	whole := filepath.Join(work, "whole")
	faultline("suite", suiteDir, "--dir", whole)
	wholeCode := code["suite "+suiteDir]
	s1, s2 := filepath.Join(work, "shard-1"), filepath.Join(work, "shard-2")
	faultline("suite", suiteDir, "--shard", "1/2", "--dir", s1)
	faultline("suite", suiteDir, "--shard", "2/2", "--dir", s2)
	merged := filepath.Join(work, "merged")
	faultline("report", "--merge", s1, s2, "--out", merged)
	assert.Equal(t, wholeCode, code["report --merge"], "the merge exits with the worst verdict, as the whole suite did")

	want := junitCases(t, filepath.Join(whole, reports.JUnitFile))
	require.NotEmpty(t, want)
	assert.Equal(t, want, junitCases(t, filepath.Join(merged, reports.JUnitFile)))

	md, err := os.ReadFile(filepath.Join(merged, reports.MarkdownFile))
	require.NoError(t, err)
	assert.Contains(t, string(md), "(2 scenarios)")
	assert.Equal(t, 1, strings.Count(string(md), "| scenario | verdict | checks passed | reason |"), "one table:\n%s", md)
	for _, name := range []string{"baseline", "sync-inventory-give-ups"} {
		assert.Equal(t, 1, strings.Count(string(md), "#### "+name+": "), "one section per scenario:\n%s", md)
	}
}

// TestEmptyShardWritesReports: a shard with no scenario (more shards than files) still
// writes its reports, so a CI merge step over every shard's directory finds them.
func TestEmptyShardWritesReports(t *testing.T) {
	dir := t.TempDir()
	out, err := run(t, "suite", filepath.Join(catalogDir, "baseline.yaml"), "--shard", "2/2", "--dir", dir)
	require.NoError(t, err, out)
	assert.Contains(t, out, "0 scenario(s)")
	got := junitCases(t, filepath.Join(dir, reports.JUnitFile))
	assert.Empty(t, got)
	md, err := os.ReadFile(filepath.Join(dir, reports.MarkdownFile))
	require.NoError(t, err)
	assert.Contains(t, string(md), "No runs.")

	merged := t.TempDir()
	out, err = run(t, "report", "--merge", dir, "--out", merged)
	require.NoError(t, err, out)
	assert.FileExists(t, filepath.Join(merged, reports.JUnitFile))
	assert.FileExists(t, filepath.Join(merged, reports.MarkdownFile))
}

// TestSuitesStartedTogetherGetTheirOwnDirectories: two suites started in the same second
// (CI's catalog on two runtimes at once) shared .faultline/suites/<time>, and every
// scenario of the second was refused its run directory or ran into the first's. A suite's
// default directory is now a new one; a directory named with --dir that another process
// holds is refused before any scenario runs.
func TestSuitesStartedTogetherGetTheirOwnDirectories(t *testing.T) {
	t.Chdir(t.TempDir())
	bad := "bad.yaml" // an error row, without starting a system
	require.NoError(t, os.WriteFile(bad, []byte("name: x\n"), 0o644))
	// Another suite holds this second's default directory (and the next two, so that the
	// one under test may start in any of them).
	now := time.Now().UTC()
	held := map[string]bool{}
	for i := range 3 {
		d := filepath.Join(".faultline", "suites", now.Add(time.Duration(i)*time.Second).Format("20060102T150405Z"))
		release, err := harness.ClaimDir(d)
		require.NoError(t, err)
		t.Cleanup(release)
		held[d] = true
	}
	// --shard writes the suite's reports even with no run, so its directory is printed.
	out, _ := run(t, "suite", bad, "--shard", "1/1")
	m := regexp.MustCompile(`junit:\s+(\S+)/junit.xml`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	assert.False(t, held[m[1]], "the suite wrote into %s, which another suite holds", m[1])
	assert.Regexp(t, `-2$`, m[1])

	named := filepath.Join(".faultline", "suites", now.Format("20060102T150405Z"))
	out, err := run(t, "suite", bad, "--dir", named)
	var inUse *harness.DirInUseError
	require.ErrorAs(t, err, &inUse, out)
	assert.NotContains(t, out, "== x", "refused before any scenario")
}
