package reports

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
)

func req(start, lat time.Duration, journey string, ok bool) history.Event {
	ev := history.RequestEvent(loadgen.Result{Journey: journey, Start: start, Latency: lat, OK: ok})
	ev.T = start + lat
	return ev
}

func metric(t time.Duration, name, component string, v float64) history.Event {
	ev := history.MetricEvent(history.Metric{Component: component, Name: name, Value: v})
	ev.T = t
	return ev
}

func TestAggregateBuckets(t *testing.T) {
	a := newAggregator(time.Second)
	// Bucket 0: 100 browse requests, 1..100 ms, every tenth failing. Bucket 2: 4 orders.
	for i := 1; i <= 100; i++ {
		a.add(req(time.Duration(i)*5*time.Millisecond, time.Duration(i)*time.Millisecond, "browse", i%10 != 0))
	}
	for i := range 4 {
		a.add(req(2*time.Second+time.Duration(i)*time.Millisecond, 50*time.Millisecond, "place_order", true))
	}
	tl := a.finish(&result.Run{Duration: result.Duration(3 * time.Second)}, 1)
	require.Equal(t, 3, tl.Buckets)
	require.Len(t, tl.Throughput, 2)
	assert.Equal(t, "browse", tl.Throughput[0].Name)
	assert.Equal(t, []float64{100, 0, 0}, tl.Throughput[0].Y)
	assert.Equal(t, []float64{0, 0, 4}, tl.Throughput[1].Y)
	assert.InDelta(t, 10.0, tl.ErrorRate[0].Y[0], 1e-9)
	assert.True(t, math.IsNaN(tl.ErrorRate[0].Y[1]), "no requests: no error rate, not zero")
	assert.Equal(t, []float64{100, 0, 4}, tl.AllRate.Y)

	got := map[string]float64{}
	for _, l := range tl.Latency {
		got[l.Name] = l.Y[0]
		assert.InDelta(t, 50, l.Y[2], 1e-9, "%s of identical latencies", l.Name)
		assert.True(t, math.IsNaN(l.Y[1]))
	}
	for name, want := range map[string]float64{"p50": 50, "p95": 95, "p99": 99} {
		assert.InDelta(t, want, got[name], 2, name)
	}
}

func TestAggregateRepeatsAverageThroughput(t *testing.T) {
	a := newAggregator(time.Second)
	for range 2 { // the same second of two repeats
		for i := range 10 {
			a.add(req(time.Duration(i)*time.Millisecond, time.Millisecond, "browse", true))
		}
	}
	tl := a.finish(nil, 2)
	assert.Equal(t, 10.0, tl.Throughput[0].Y[0])
}

func TestAggregateLateRequestReopensSealedBucket(t *testing.T) {
	a := newAggregator(time.Second)
	for i := range 50 {
		a.add(req(0, time.Duration(i+1)*time.Millisecond, "browse", true))
	}
	// The clock moves far past bucket 0, sealing it...
	a.add(metric(sealAfter+10*time.Second, "faultline_outbox_backlog", "order-1", 0))
	require.Nil(t, a.journeys["browse"][0].live, "bucket 0 is compacted")
	// ...then a slow request that started in it completes.
	late := req(500*time.Millisecond, 30*time.Second, "browse", false)
	late.T = sealAfter + 11*time.Second
	a.add(late)
	tl := a.finish(nil, 1)
	assert.Equal(t, 51.0, tl.Throughput[0].Y[0])
	assert.InDelta(t, 100.0/51, tl.ErrorRate[0].Y[0], 1e-9)
	var maxLat float64
	for _, l := range tl.Latency {
		maxLat = math.Max(maxLat, l.Y[0])
	}
	assert.Greater(t, maxLat, 1000.0, "the late request still counts in the quantiles")
}

func TestAggregateBoundsTimeline(t *testing.T) {
	a := newAggregator(time.Second)
	a.add(req(1000*time.Hour, time.Millisecond, "browse", true))
	tl := a.finish(nil, 1)
	assert.Equal(t, 1, tl.Dropped)
	assert.Empty(t, tl.Throughput, "a corrupted offset allocates nothing")
}

func TestAggregateConvergence(t *testing.T) {
	heal := 4 * time.Second
	run := &result.Run{Faults: []result.Fault{{Name: "broker-down", Injected: result.Duration(time.Second), Healed: result.Duration(heal)}}}
	for _, tc := range []struct {
		name          string
		backlog, lag  []float64 // samples every 500 ms from 0
		wantConverged bool
		want          time.Duration
	}{
		{"drains after heal", []float64{0, 0, 3, 8, 9, 9, 9, 9, 9, 4, 0, 0}, []float64{0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0}, true, 5500 * time.Millisecond},
		{"never backed up", []float64{0, 0, 0, 0}, nil, true, heal},
		{"still backed up", []float64{0, 5, 5, 5}, nil, false, heal},
		{"zero then up again", []float64{0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0}, nil, true, 5500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAggregator(time.Second)
			for i, v := range tc.backlog {
				a.add(metric(time.Duration(i)*500*time.Millisecond, "faultline_outbox_backlog", "order-1", v))
			}
			for i, v := range tc.lag {
				a.add(metric(time.Duration(i)*500*time.Millisecond, "faultline_consumer_lag", "product-1", v))
			}
			tl := a.finish(run, 1)
			assert.Equal(t, tc.wantConverged, tl.Converged)
			if tc.wantConverged {
				assert.Equal(t, tc.want, tl.Convergence)
			}
		})
	}
}

func TestAggregateBreakerTakesWorstStatePerSecond(t *testing.T) {
	a := newAggregator(time.Second)
	for i, v := range []float64{0, 2, 1, 0} {
		ev := history.MetricEvent(history.Metric{Component: "gateway-1", Name: "faultline_breaker_state",
			Labels: map[string]string{"caller": "gateway", "dependency": "product"}, Value: v})
		ev.T = time.Duration(i) * 250 * time.Millisecond
		a.add(ev)
	}
	tl := a.finish(nil, 1)
	require.Len(t, tl.Breakers, 1)
	assert.Equal(t, "gateway → product", tl.Breakers[0].Name)
	assert.Equal(t, []float64{2}, tl.Breakers[0].Y)
}
