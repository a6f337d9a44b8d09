package checks

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

func TestSketchQuantiles(t *testing.T) {
	var s sketch
	assert.Equal(t, time.Duration(0), s.quantile(0.99), "empty")
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for range 20_000 {
		d := time.Duration(rng.ExpFloat64() * float64(50*time.Millisecond))
		all = append(all, d)
		s.add(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 1} {
		exact := all[int(q*float64(len(all)))-1] // nearest rank
		got := s.quantile(q)
		assert.GreaterOrEqual(t, got, exact, "q%.2f never under-reports", q)
		assert.LessOrEqual(t, float64(got), float64(exact)*(1+1.0/64), "q%.2f within a bucket", q)
	}
	assert.LessOrEqual(t, len(s.counts), sketchBuckets)
	s.add(time.Duration(1<<63 - 1))
	assert.Len(t, s.counts, sketchBuckets, "the largest duration fits")

	var same sketch
	for range 99 {
		same.add(20 * time.Millisecond)
	}
	same.add(812 * time.Millisecond)
	assert.Equal(t, 20*time.Millisecond, same.quantile(0.99), "identical durations are exact")
	assert.Equal(t, 812*time.Millisecond, same.quantile(1))
	assert.Equal(t, 37*time.Nanosecond, func() time.Duration { var x sketch; x.add(37); return x.quantile(0.5) }())
}

func TestRouteMatches(t *testing.T) {
	tests := []struct {
		route, method, path string
		want                bool
	}{
		{"GET /orders/{id}", "GET", "/orders/o-1", true},
		{"GET /orders/{id}", "get", "/orders/o-1?expand=true", true},
		{"GET /orders/{id}", "POST", "/orders/o-1", false},
		{"GET /orders/{id}", "GET", "/orders", false},
		{"GET /orders/{id}", "GET", "/orders/o-1/items", false},
		{"/products", "HEAD", "/products/", true},
		{"POST /orders", "POST", "/orders", true},
		{"", "DELETE", "/anything", true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, parseRoute(tt.route).matches(tt.method, tt.path), "%s vs %s %s", tt.route, tt.method, tt.path)
	}
}

// Browse requests leave nothing behind: the latency sketch is bounded, failures are
// counted by status. (The consistency kind's one entry per placed key is proven in
// reference/consistency.)
func TestStateDoesNotGrowWithBrowsing(t *testing.T) {
	sc := &scenarios.Scenario{Expect: scenarios.Expect{
		Overall: []scenarios.Check{
			{Type: scenarios.CheckLatency, Spec: &scenarios.LatencyCheck{Percentile: "p99", Max: scenarios.Duration(time.Second)}},
			{Type: scenarios.CheckErrorRate, Spec: &scenarios.ErrorRateCheck{Max: 0.1}},
		},
	}}
	e := newEngine(sc, Inputs{Phases: []result.Phase{{Name: PhaseOverall, End: result.Duration(time.Hour)}}})
	lat := e.evals[0].(*latencyEval)
	buckets := func() int { return len(lat.acc.lat.counts) }
	r := loadgen.Result{Journey: "browse", Method: "GET", Status: 200, OK: true, Latency: 30 * time.Millisecond}
	e.request(&r)
	before := buckets()
	for i := range 100_000 {
		r.Start = time.Duration(i) * time.Millisecond
		r.Latency = time.Duration(10+i%90) * time.Millisecond
		r.Status = []int{200, 200, 500}[i%3]
		r.OK = r.Status < 500
		e.request(&r)
	}
	assert.LessOrEqual(t, buckets(), 2*max(before, 1200), "the sketch is bounded by the latency range")
	assert.Equal(t, map[int]uint64{500: 33_333}, lat.acc.failed, "failures are counted by status, not kept")
}
