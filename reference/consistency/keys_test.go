package consistency

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/loadgen"
)

// Browse requests leave nothing behind; placements leave one entry per key.
func TestStateDoesNotGrowWithBrowsing(t *testing.T) {
	ev := (&Check{ExactlyOnce: true}).FinalEvaluator(checks.Phase{Name: checks.PhaseOverall}).(*evaluator)
	r := loadgen.Result{Journey: "browse", Method: "GET", Status: 200, OK: true, Latency: 30 * time.Millisecond}
	for i := range 100_000 {
		r.Start = time.Duration(i) * time.Millisecond
		r.Status = []int{200, 200, 500}[i%3]
		r.OK = r.Status < 500
		ev.Request(&r)
	}
	assert.Empty(t, ev.keys, "browse requests are not remembered")

	p := loadgen.Result{Journey: "place_order", Method: "POST", Status: 201, OK: true}
	for i := range 1000 {
		p.Key, p.Created = loadgen.KeyFor(1, uint64(i%100)), "o"
		ev.Request(&p)
	}
	require.Len(t, ev.keys, 100, "one entry per placed key, however often it is retried")
}
