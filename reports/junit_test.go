package reports

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

// The consumer's view of JUnit, written independently of the producer's types, as a CI
// test reporter reads it.
type xTestsuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []xTestsuite `xml:"testsuite"`
}

type xTestsuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     float64     `xml:"time,attr"`
	Cases    []xTestcase `xml:"testcase"`
	Out      string      `xml:"system-out"`
}

type xTestcase struct {
	Name      string    `xml:"name,attr"`
	Classname string    `xml:"classname,attr"`
	Time      float64   `xml:"time,attr"`
	Failure   *xProblem `xml:"failure"`
	Error     *xProblem `xml:"error"`
	Skipped   *xProblem `xml:"skipped"`
	Out       string    `xml:"system-out"`
}

type xProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

func parseJUnit(t *testing.T, b []byte) xTestsuites {
	t.Helper()
	var doc xTestsuites
	require.NoError(t, xml.Unmarshal(b, &doc), "%s", b)
	return doc
}

func junitOf(t *testing.T, runs ...*result.Run) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, JUnit(&buf, runs...))
	return buf.Bytes()
}

func TestJUnitGolden(t *testing.T) {
	golden(t, "junit.golden", junitOf(t, fixtureRun(), invalidRun(), expectedRun()))
}

func TestJUnitReadByConsumer(t *testing.T) {
	doc := parseJUnit(t, junitOf(t, fixtureRun(), invalidRun(), expectedRun()))
	require.Len(t, doc.Suites, 3)

	// Totals agree with what the cases say, suite by suite and overall.
	var tests, failures, errs, skipped int
	for _, s := range doc.Suites {
		var f, e, sk int
		for _, c := range s.Cases {
			if c.Failure != nil {
				f++
			}
			if c.Error != nil {
				e++
			}
			if c.Skipped != nil {
				sk++
			}
		}
		assert.Equal(t, len(s.Cases), s.Tests, s.Name)
		assert.Equal(t, f, s.Failures, s.Name)
		assert.Equal(t, e, s.Errors, s.Name)
		assert.Equal(t, sk, s.Skipped, s.Name)
		tests, failures, errs, skipped = tests+s.Tests, failures+s.Failures, errs+s.Errors, skipped+s.Skipped
	}
	assert.Equal(t, []int{tests, failures, errs, skipped}, []int{doc.Tests, doc.Failures, doc.Errors, doc.Skipped})

	failed := doc.Suites[0]
	assert.Equal(t, "dependency-latency", failed.Name)
	assert.InDelta(t, 9.0, failed.Time, 1e-9)
	byName := map[string]xTestcase{}
	for _, c := range failed.Cases {
		byName[c.Name] = c
	}
	got := byName["during:slow-product/error_rate browse"]
	require.NotNil(t, got.Failure)
	assert.Equal(t, "12.5% vs <= 10%", got.Failure.Message)
	assert.Equal(t, "error_rate", got.Failure.Type)
	assert.Equal(t, "dependency-latency.during:slow-product", got.Classname)
	assert.InDelta(t, 3.0, got.Time, 1e-9, "a check's time is its phase's span")
	assert.Contains(t, got.Failure.Body, "15 of 120 requests", "the detail reaches the failure body")
	assert.NotNil(t, byName["after/breaker_closed gateway->product"].Skipped)
	assert.Nil(t, byName["after/latency p99"].Failure)
	assert.Contains(t, failed.Out, "<b>not bold</b>", "the description survives escaping")

	invalid := doc.Suites[1]
	require.NotEmpty(t, invalid.Cases)
	require.NotNil(t, invalid.Cases[0].Error, "an invalid run leads with an error testcase")
	assert.Equal(t, "invalid", invalid.Cases[0].Error.Type)
	assert.Contains(t, invalid.Cases[0].Error.Message, "never landed")

	expected := doc.Suites[2]
	ef := expected.Cases[0]
	assert.Equal(t, "during:slow-order/error_rate", ef.Name)
	assert.Nil(t, ef.Failure, "an expected failure that happened passes")
	assert.Contains(t, ef.Out, "without a breaker every caller waits")
}

func TestJUnitExpectedFailure(t *testing.T) {
	for _, tc := range []struct {
		name        string
		observed    bool
		checkPassed bool
		check       string
		want        string // failure, error or pass
	}{
		{"failed as stated", true, false, "during:slow-order/error_rate", "pass"},
		{"held instead", false, true, "during:slow-order/error_rate", "failure"},
		{"check missing", false, false, "no-such-check", "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := expectedRun()
			r.ExpectedFailure.Observed = tc.observed
			r.ExpectedFailure.Check = tc.check
			r.Checks[0].Passed = tc.checkPassed
			doc := parseJUnit(t, junitOf(t, r))
			var c *xTestcase
			for i := range doc.Suites[0].Cases {
				if doc.Suites[0].Cases[i].Name == tc.check {
					c = &doc.Suites[0].Cases[i]
				}
			}
			require.NotNil(t, c, "a testcase names the expected failure")
			got := "pass"
			switch {
			case c.Error != nil:
				got = "error"
			case c.Failure != nil:
				got = "failure"
				assert.Equal(t, "expected_failure", c.Failure.Type)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestJUnitVerdictCases(t *testing.T) {
	for _, tc := range []struct {
		verdict    result.Verdict
		wantErrors int
	}{{result.Passed, 0}, {result.Failed, 0}, {result.Invalid, 1}, {result.Aborted, 1}, {result.Error, 1}} {
		t.Run(string(tc.verdict), func(t *testing.T) {
			r := &result.Run{Version: 1, Scenario: "s", Verdict: tc.verdict, Reason: "because"}
			doc := parseJUnit(t, junitOf(t, r))
			assert.Equal(t, tc.wantErrors, doc.Errors)
		})
	}
}

func TestJUnitSurvivesControlCharacters(t *testing.T) {
	r := fixtureRun()
	r.Checks[4].Message = "bad\x00byte\x1b[31m and ]]> end"
	r.Description = "nul\x00"
	doc := parseJUnit(t, junitOf(t, r))
	for _, c := range doc.Suites[0].Cases {
		if c.Failure != nil {
			assert.Contains(t, c.Failure.Body, "]]> end", "a CDATA terminator in the text is kept intact")
		}
	}
}

func TestJUnitWellFormedForXmllint(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint not installed (Debian package libxml2-utils); skipping the well-formedness check")
	}
	path := filepath.Join(t.TempDir(), "junit.xml")
	require.NoError(t, os.WriteFile(path, junitOf(t, fixtureRun(), invalidRun(), expectedRun()), 0o644))
	out, err := exec.Command(xmllint, "--noout", path).CombinedOutput()
	require.NoError(t, err, "xmllint: %s", out)
	assert.Empty(t, strings.TrimSpace(string(out)))
}

func TestJUnitRejectsNilRun(t *testing.T) {
	var buf bytes.Buffer
	err := JUnit(&buf, fixtureRun(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "run 1 is nil")
}

// TestJUnitExpectedFailureOfACheckWithSubResults: a check that reports one result per
// property ("inventory/settled", "inventory/exactly_once", ...) and is expected to fail
// passes in JUnit when one of them failed as stated: no "not evaluated" error, no failure
// for the property that failed as expected, none for the ones that held. The run passed,
// so a CI reading the JUnit must count no failure.
func TestJUnitExpectedFailureOfACheckWithSubResults(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		observed                 bool
		settledPassed            bool
		wantFailures, wantErrors int
	}{
		{"failed as stated", true, false, 0, 0},
		{"held instead", false, true, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := expectedRun()
			r.ExpectedFailure = &result.ExpectedFailure{Check: "inventory", Reason: "events are lost", Observed: tc.observed,
				Results: []string{"inventory/exactly_once", "inventory/settled"}}
			r.Checks = []result.Check{
				{Name: "inventory/exactly_once", Kind: "consistency", Phase: "after", Passed: true, Message: "every order applied once"},
				{Name: "inventory/settled", Kind: "consistency", Phase: "after", Passed: tc.settledPassed, Message: "95 inventory events lost"},
				{Name: "before/latency p99", Kind: "latency", Phase: "before", Passed: true, Message: "p99 35 ms"},
			}
			doc := parseJUnit(t, junitOf(t, r))
			require.Len(t, doc.Suites, 1)
			assert.Equal(t, tc.wantFailures, doc.Suites[0].Failures, "failures")
			assert.Equal(t, tc.wantErrors, doc.Suites[0].Errors, "errors")
			for _, c := range doc.Suites[0].Cases {
				assert.NotEqual(t, "inventory", c.Name, "no case for a check that was evaluated under its sub-results")
			}
		})
	}
}
