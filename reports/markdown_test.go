package reports

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

func markdownOf(t *testing.T, runs ...*result.Run) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, Markdown(&buf, runs...))
	return buf.String()
}

func TestMarkdownGolden(t *testing.T) {
	golden(t, "summary_single.golden", []byte(markdownOf(t, fixtureRun())))
	golden(t, "summary_suite.golden", []byte(markdownOf(t, fixtureRun(), invalidRun(), expectedRun())))
}

func TestMarkdownContent(t *testing.T) {
	for _, tc := range []struct {
		name string
		runs []*result.Run
		want []string
	}{
		{"failed run", []*result.Run{fixtureRun()}, []string{
			"**Verdict: FAILED**",
			"| ✗ | during:slow-product/error_rate browse | during:slow-product | 12.5% | <= 10% |",
			`failed \| more than 10%`, // a pipe in a message does not break the table
			"| slow-product | latency | gateway, product | 2.01s – 5.02s | 1.5s | 1.52s | yes |",
			"achieved 39.6 req/s of 40 planned (99%)",
			"`runs/dependency-latency-1/report.html`",
		}},
		{"suite", []*result.Run{fixtureRun(), invalidRun(), expectedRun()}, []string{
			"## Faultline: INVALID (3 scenarios)",
			"| replica-crash | INVALID | 1/2 |",
			"PASSED (expected failure observed)",
			"| ✗ (expected) | during:slow-order/error_rate |",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := markdownOf(t, tc.runs...)
			for _, w := range tc.want {
				assert.Contains(t, got, w)
			}
		})
	}
}

func TestMarkdownNeutralisesHTML(t *testing.T) {
	r := fixtureRun()
	r.Reason = "<script>alert(1)</script> and p99 <= 1s"
	got := markdownOf(t, r)
	assert.NotContains(t, got, "<script>")
	assert.Contains(t, got, "&lt;script>")
	assert.Contains(t, got, "p99 <= 1s", "a comparison stays readable")
}

func TestMarkdownHasNoEmojiInVerdict(t *testing.T) {
	for _, v := range []result.Verdict{result.Passed, result.Failed, result.Invalid, result.Aborted, result.Error} {
		r := &result.Run{Version: 1, Scenario: "s", Verdict: v}
		first := strings.SplitN(markdownOf(t, r), "\n", 2)[0]
		assert.Equal(t, "### s: "+strings.ToUpper(string(v)), first)
	}
}
