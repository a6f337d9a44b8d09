package reports

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/result"
)

// maxMergeFile bounds one input of a merge: a suite's JUnit or summary of thousands of
// checks is a few megabytes, and a merge must not read an archive by mistake.
const maxMergeFile = 64 << 20

// MergeJUnit joins JUnit documents written by JUnit (one per shard of a sharded suite)
// into one testsuites document holding every shard's test suites in the order of paths,
// with the totals recomputed, so CI sees the same test cases a single run would have
// written. A file that is not such a document is an error naming it, and so is a scenario
// (a testsuite) found in two of the files: shards that overlap would count it twice. It
// returns the worst verdict of the scenarios (result.Worst), the one a single run of the
// whole suite would have exited with; a testsuite without a verdict counts as an error.
func MergeJUnit(w io.Writer, paths ...string) (result.Verdict, error) {
	doc := junitSuites{Name: "faultline"}
	from := map[string]string{}
	var total float64
	verdicts := []result.Verdict{}
	for _, p := range paths {
		data, err := readMergeFile(p)
		if err != nil {
			return "", fmt.Errorf("merge junit: %w", err)
		}
		var in junitSuites
		if err := xml.Unmarshal(data, &in); err != nil {
			return "", fmt.Errorf("merge junit: %s is not a JUnit report of faultline (a <testsuites> document): %w", p, err)
		}
		seen := map[string]bool{}
		for _, s := range in.Suites {
			if other, ok := from[s.Name]; ok && !seen[s.Name] {
				return "", fmt.Errorf("merge junit: scenario %q is in both %s and %s: the shards overlap; run each shard of one split (the same N and the same files) once", s.Name, other, p)
			}
			seen[s.Name], from[s.Name] = true, p
			if t, err := strconv.ParseFloat(s.Time, 64); err == nil {
				total += t
			}
			verdicts = append(verdicts, suiteVerdict(s))
			doc.add(s)
		}
	}
	doc.Time = seconds(total)
	if err := doc.write(w); err != nil {
		return "", fmt.Errorf("merge junit: %w", err)
	}
	return result.Worst(verdicts...), nil
}

// suiteVerdict is the verdict a scenario's testsuite records in its properties.
func suiteVerdict(s junitSuite) result.Verdict {
	for _, p := range s.Properties {
		if p.Name == "verdict" {
			return result.Verdict(p.Value)
		}
	}
	return result.Error
}

// mdSummary is a Markdown summary written by Markdown, taken apart: the overview table's
// rows and each run's section (its heading at the suite's level).
type mdSummary struct {
	rows     []string
	names    []string // scenario of each row, as the row shows it
	verdicts []result.Verdict
	sections []string
}

var (
	mdSuiteHead  = regexp.MustCompile(`^## Faultline: \S+ \((\d+) scenarios\)$`)
	mdSingleHead = regexp.MustCompile(`^### (.*): (PASSED|FAILED|INVALID|ABORTED|ERROR|UNKNOWN)(.*)$`)
	mdRow        = regexp.MustCompile(`^\| (.*?) \| (PASSED|FAILED|INVALID|ABORTED|ERROR|UNKNOWN)\b.* \| \d+/\d+ \| .*\|$`)
	mdVerdict    = regexp.MustCompile(`^\*\*Verdict: \S+\*\*(?: — (.*))?$`)
	mdChecks     = regexp.MustCompile(`^\*\*Checks\*\* \((\d+) of (\d+) passed\)$`)
)

// MergeMarkdown joins Markdown summaries written by Markdown (one per shard; a shard of a
// single scenario wrote the one-run form) into one summary of the suite form: one overview
// table with every shard's rows under a heading with the worst verdict, then every run's
// section. Merging the shards of a suite gives the summary one run of the whole suite
// would have written, rows in the order of paths. A file not written by Markdown is an
// error naming it, and so is a scenario in two of the files.
func MergeMarkdown(w io.Writer, paths ...string) error {
	var all mdSummary
	from := map[string]string{}
	for _, p := range paths {
		data, err := readMergeFile(p)
		if err != nil {
			return fmt.Errorf("merge markdown: %w", err)
		}
		s, err := parseSummary(data)
		if err != nil {
			return fmt.Errorf("merge markdown: %s is not a summary written by faultline: %w", p, err)
		}
		seen := map[string]bool{}
		for _, n := range s.names {
			if other, ok := from[n]; ok && !seen[n] {
				return fmt.Errorf("merge markdown: scenario %q is in both %s and %s: the shards overlap; run each shard of one split (the same N and the same files) once", n, other, p)
			}
			seen[n], from[n] = true, p
		}
		all.rows = append(all.rows, s.rows...)
		all.names = append(all.names, s.names...)
		all.verdicts = append(all.verdicts, s.verdicts...)
		all.sections = append(all.sections, s.sections...)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "## Faultline: %s (%d scenarios)\n\n", statusWord(result.Worst(all.verdicts...)), len(all.rows))
	if len(all.rows) == 0 {
		bw.WriteString("No runs.\n")
	} else {
		bw.WriteString("| scenario | verdict | checks passed | reason |\n|---|---|---|---|\n")
		for _, r := range all.rows {
			bw.WriteString(r + "\n")
		}
	}
	for _, s := range all.sections {
		bw.WriteString("\n" + s)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("merge markdown: %w", err)
	}
	return nil
}

// parseSummary takes apart the suite form (overview, then "#### " sections) or the
// one-run form ("### " heading), whose overview row it rebuilds as Markdown would.
func parseSummary(data []byte) (mdSummary, error) {
	var s mdSummary
	text := string(data)
	first, rest, _ := strings.Cut(text, "\n")
	if m := mdSingleHead.FindStringSubmatch(first); m != nil {
		var reason, passed, total string
		verdictSeen := false
		for _, l := range strings.Split(rest, "\n") {
			if v := mdVerdict.FindStringSubmatch(l); v != nil && !verdictSeen {
				reason, verdictSeen = v[1], true
			}
			if c := mdChecks.FindStringSubmatch(l); c != nil && passed == "" {
				passed, total = c[1], c[2]
			}
		}
		if passed == "" {
			return s, errors.New("a one-run summary without its **Checks** line")
		}
		name := strings.ReplaceAll(m[1], "|", `\|`)
		s.rows = []string{fmt.Sprintf("| %s | %s%s | %s/%s | %s |", name, m[2], m[3], passed, total, strings.ReplaceAll(reason, "|", `\|`))}
		s.names = []string{name}
		s.verdicts = []result.Verdict{result.Verdict(strings.ToLower(m[2]))}
		s.sections = []string{"#" + text}
		return s, nil
	}
	m := mdSuiteHead.FindStringSubmatch(first)
	if m == nil {
		return s, errors.New(`its first line is neither "## Faultline: ..." nor "### SCENARIO: VERDICT"`)
	}
	want, _ := strconv.Atoi(m[1])
	lines := strings.SplitAfter(rest, "\n")
	i := 0
	for ; i < len(lines) && !strings.HasPrefix(lines[i], "#### "); i++ {
		l := strings.TrimSuffix(lines[i], "\n")
		if r := mdRow.FindStringSubmatch(l); r != nil {
			s.rows = append(s.rows, l)
			s.names = append(s.names, r[1])
			s.verdicts = append(s.verdicts, result.Verdict(strings.ToLower(r[2])))
		}
	}
	var cur strings.Builder
	for ; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "#### ") && cur.Len() > 0 {
			s.sections = append(s.sections, strings.TrimSuffix(cur.String(), "\n")) // the blank line before the next heading
			cur.Reset()
		}
		cur.WriteString(lines[i])
	}
	if cur.Len() > 0 {
		s.sections = append(s.sections, cur.String())
	}
	if len(s.rows) != want || len(s.sections) != want {
		return s, fmt.Errorf("the heading counts %d scenarios, the file has %d table rows and %d sections", want, len(s.rows), len(s.sections))
	}
	return s, nil
}

// readMergeFile reads one input of a merge, bounded.
func readMergeFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMergeFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxMergeFile {
		return nil, fmt.Errorf("read %s: more than %d bytes", path, maxMergeFile)
	}
	return data, nil
}
