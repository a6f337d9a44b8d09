package reports

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/internal/browsertest"
	"github.com/faultline-dev/faultline/result"
)

// longRun is the fixture with the long strings real runs produce: a measurement detail
// with an unbroken address in it, long instance names, and faults named at length.
func longRun() *result.Run {
	r := fixtureRun()
	f := &r.Faults[0]
	f.Name = "slow-product-catalogue-behind-the-gateway-during-the-spike"
	f.Targets = []string{"gateway-with-a-long-instance-name-1", "product-catalogue-service-instance-2"}
	f.Effect.Detail = "measure: probe 5 of 5 failed: Get http://127.0.0.1:54321/products/sku-000000000000000000000000000000000001?" +
		"trace=faultline-run-20261202T223000Z-abcdefabcdefabcdefabcdefabcdefabcdef: context deadline exceeded " +
		"(Client.Timeout exceeded while awaiting headers) after 1.5 s against a configured latency of 1.5 s and jitter 0 s"
	r.Topology = append(r.Topology,
		result.Component{Name: "product-catalogue-service-instance-2", Kind: "service", Service: "product"},
		result.Component{Name: "gateway-with-a-long-instance-name-1", Kind: "gateway", Service: "gateway"})
	return r
}

// overflowProbe is added to a copy of the page (the page itself runs no script): it lists
// every table wider than the page's column, every cell whose content spills out of it,
// and every topology label wider than the box or the drawing it belongs to.
const overflowProbe = `<script>
const out = [];
const main = document.querySelector('main').getBoundingClientRect();
for (const t of document.querySelectorAll('table')) {
  const b = t.getBoundingClientRect();
  if (b.right > main.right + 1) out.push('table#' + t.id + ' is ' + Math.round(b.width) + 'px wide in a ' + Math.round(main.width) + 'px column');
}
for (const c of document.querySelectorAll('td, th')) {
  if (c.scrollWidth > c.clientWidth + 1) out.push('cell spills: ' + c.textContent.slice(0, 60));
}
const svg = document.querySelector('svg.topology');
if (svg) {
  const vb = svg.viewBox.baseVal;
  for (const g of svg.querySelectorAll('g.node')) {
    const box = g.querySelector('rect').getBBox();
    for (const t of g.querySelectorAll('text:not(.fault-label)')) {
      const b = t.getBBox();
      if (b.width > box.width + 1) out.push('label wider than its box: ' + t.textContent);
    }
  }
  for (const t of svg.querySelectorAll('text')) {
    const b = t.getBBox();
    if (b.x < vb.x - 1 || b.x + b.width > vb.x + vb.width + 1) out.push('label outside the drawing: ' + t.textContent);
  }
}
const pre = document.createElement('pre');
pre.id = 'overflow';
pre.textContent = out.length ? out.join('\n') : 'none';
document.body.appendChild(pre);
</script>`

var overflowOut = regexp.MustCompile(`(?s)<pre id="overflow">(.*?)</pre>`)

// TestHTMLLongTextStaysInPlace renders a run with long strings in a real browser and
// checks that nothing overflows: the fault table's measured column wraps its detail, and
// topology labels are shortened with an ellipsis (the full text in their title).
func TestHTMLLongTextStaysInPlace(t *testing.T) {
	b := browsertest.New(t, "layout", 1280, 2400)
	dir := t.TempDir()
	p, err := WriteAll(context.Background(), dir, longRun(), fixtureHistory(t))
	require.NoError(t, err)
	page, err := os.ReadFile(p.HTML)
	require.NoError(t, err)
	probe := filepath.Join(dir, "probe.html")
	require.NoError(t, os.WriteFile(probe, []byte(strings.Replace(string(page), "</body>", overflowProbe+"</body>", 1)), 0o644))

	b.Open("file://" + probe)
	m := overflowOut.FindStringSubmatch(b.DOM())
	require.NotNil(t, m, "the probe ran")
	assert.Equal(t, "none", m[1], "overflowing elements")
}

// Topology labels too long for their box are shortened, and the full text stays
// available as the label's title (a tooltip, and what a screen reader reads).
func TestTopologyLabelsFit(t *testing.T) {
	svg := topologySVG(longRun(), newAggregator(time.Second).windows(longRun()))
	assert.Contains(t, svg, "<title>product-catalogue-service-instance-2</title>")
	assert.Contains(t, svg, "<title>slow-product-catalogue-behind-the-gateway-during-the-spike</title>")
	assert.Regexp(t, `>product-cat[^<]*…<title>`, svg)
	assert.Contains(t, svg, ">gateway-1</text>", "a short name is left whole, without a title")
}
