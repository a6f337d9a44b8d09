package reports

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/result"
)

// The JUnit structures follow the de-facto schema that Jenkins, GitLab and GitHub test
// reporters read: testsuites > testsuite > testcase > failure | error | skipped.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  *junitText      `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
	SystemOut *junitText    `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",cdata"`
}

// junitText keeps multi-line text readable in the file: CDATA preserves newlines that an
// attribute-style escape would turn into &#xA;.
type junitText struct {
	Text string `xml:",cdata"`
}

func textOf(s string) *junitText {
	if s == "" {
		return nil
	}
	return &junitText{Text: xmlSafe(s)}
}

// xmlSafe drops characters XML 1.0 cannot carry at all (control characters from a
// process's output, say): CDATA is written verbatim, so one stray byte would make the
// whole report unreadable to the CI tool.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r == 0xFFFE, r == 0xFFFF, r >= 0xD800 && r <= 0xDFFF:
			return -1
		}
		return r
	}, s)
}

// JUnit writes runs as one JUnit XML document, one testsuite per run and one testcase per
// check, so that CI dashboards list every resilience check next to unit tests. A run that
// is invalid, aborted or errored gets an <error> testcase with the reason (the run could
// not show what it claims, which is not the same as a failed check); the check a
// weak-design scenario expects to fail is shown passing when it failed as stated, with the
// explanation in <system-out>.
func JUnit(w io.Writer, runs ...*result.Run) error {
	doc := junitSuites{Name: "faultline"}
	var total float64
	for i, r := range runs {
		if r == nil {
			return fmt.Errorf("write junit: run %d is nil", i)
		}
		doc.add(junitSuiteOf(r))
		total += r.Duration.Std().Seconds()
	}
	doc.Time = seconds(total)
	if err := doc.write(w); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	return nil
}

// add appends a suite and counts its cases in the document's totals.
func (d *junitSuites) add(s junitSuite) {
	d.Tests += s.Tests
	d.Failures += s.Failures
	d.Errors += s.Errors
	d.Skipped += s.Skipped
	d.Suites = append(d.Suites, s)
}

// write encodes the document as JUnit writes it: the XML header, two-space indents, a
// final newline; a merge of shards so matches a single run byte for byte.
func (d *junitSuites) write(w io.Writer) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(d); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func seconds(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) }

func junitSuiteOf(r *result.Run) junitSuite {
	s := junitSuite{
		Name: r.Scenario,
		Time: seconds(r.Duration.Std().Seconds()),
	}
	if !r.StartedAt.IsZero() {
		s.Timestamp = r.StartedAt.UTC().Format("2006-01-02T15:04:05")
	}
	prop := func(name, value string) {
		if value != "" {
			s.Properties = append(s.Properties, junitProperty{Name: name, Value: value})
		}
	}
	prop("verdict", string(r.Verdict))
	prop("reason", r.Reason)
	prop("design", r.Design)
	prop("runtime", r.Runtime)
	prop("seed", strconv.FormatInt(r.Seed, 10))
	prop("history", historyOf(r))

	switch r.Verdict {
	case result.Invalid, result.Aborted, result.Error:
		s.Cases = append(s.Cases, verdictCase(r))
	}
	foundExpected := false
	for _, c := range r.Checks {
		if expectedFailureOf(r, c) {
			foundExpected = true
		}
		s.Cases = append(s.Cases, checkCase(r, c))
	}
	if ef := r.ExpectedFailure; ef != nil && !foundExpected {
		s.Cases = append(s.Cases, junitCase{
			Name: ef.Check, Classname: r.Scenario, Time: seconds(0),
			Error: &junitProblem{
				Message: "the check expected to fail was not evaluated",
				Type:    "expected_failure",
				Body:    "The scenario says check " + strconv.Quote(ef.Check) + " must fail (" + ef.Reason + "), but the run has no such check.",
			},
		})
	}
	var out strings.Builder
	if r.Description != "" {
		out.WriteString(strings.TrimSpace(r.Description) + "\n")
	}
	fmt.Fprintf(&out, "verdict: %s", r.Verdict)
	if r.Reason != "" {
		fmt.Fprintf(&out, ": %s", r.Reason)
	}
	if r.Hint != "" {
		fmt.Fprintf(&out, "\nhint: %s", r.Hint)
	}
	s.SystemOut = textOf(out.String())
	for _, c := range s.Cases {
		for _, p := range []*junitProblem{c.Failure, c.Error, c.Skipped} {
			if p != nil {
				p.Body = xmlSafe(p.Body)
			}
		}
		s.Tests++
		switch {
		case c.Error != nil:
			s.Errors++
		case c.Failure != nil:
			s.Failures++
		case c.Skipped != nil:
			s.Skipped++
		}
	}
	return s
}

// verdictCase explains a run whose checks cannot be trusted.
func verdictCase(r *result.Run) junitCase {
	msg := string(r.Verdict)
	if r.Reason != "" {
		msg += ": " + r.Reason
	}
	body := msg
	if r.Hint != "" {
		body += "\nhint: " + r.Hint
	}
	switch r.Verdict {
	case result.Invalid:
		body += "\nThe run could not show what the scenario claims (a fault that never landed, load that never reached its rate, or a steady state that did not hold before the fault); its checks are listed but prove nothing."
	case result.Aborted:
		body += "\nA stop condition fired and the run healed at once; checks after that moment were not observed."
	}
	return junitCase{
		Name: "verdict", Classname: r.Scenario, Time: seconds(r.Duration.Std().Seconds()),
		Error: &junitProblem{Message: msg, Type: string(r.Verdict), Body: body},
	}
}

func checkCase(r *result.Run, c result.Check) junitCase {
	tc := junitCase{
		Name:      c.Name,
		Classname: r.Scenario + "." + phaseOrOverall(c.Phase),
		Time:      seconds(phaseSpan(r, c.Phase).Seconds()),
	}
	body := c.Message
	if c.Detail != "" {
		body += "\n" + c.Detail
	}
	kind := c.Kind
	if kind == "" {
		kind = "check"
	}
	switch {
	case expectedFailureOf(r, c):
		ef := r.ExpectedFailure
		switch {
		case !c.Passed && ef.Observed:
			tc.SystemOut = textOf("Expected failure, observed: " + ef.Reason + "\n" + figureVsBound(c) + ": " + body)
		case c.Passed && ef.Observed:
			// Another property of the check held while the one expected to fail did.
			tc.SystemOut = textOf("Part of the check expected to fail (" + ef.Check + "), which did; this part held: " + body)
		case c.Skipped:
			tc.Skipped = &junitProblem{Message: "expected to fail, but could not be evaluated: " + figureVsBound(c), Body: body}
		case !c.Passed:
			tc.Failure = &junitProblem{
				Message: "failed, but not as expected: " + figureVsBound(c),
				Type:    "expected_failure",
				Body:    "The scenario says this check must fail: " + ef.Reason + "\n" + body,
			}
		default:
			tc.Failure = &junitProblem{
				Message: "expected to fail, but held: " + figureVsBound(c),
				Type:    "expected_failure",
				Body:    "The scenario says this check must fail: " + ef.Reason + "\n" + body,
			}
		}
	case c.Skipped:
		tc.Skipped = &junitProblem{Message: "could not be evaluated: " + body}
	case !c.Passed:
		tc.Failure = &junitProblem{Message: figureVsBound(c), Type: kind, Body: body}
	}
	return tc
}

func phaseOrOverall(p string) string {
	if p == "" {
		return "overall"
	}
	return p
}
