package reports

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
)

func d(s string) result.Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return result.Duration(v)
}

// fixtureRun is a failed dependency-latency run: the breaker opened and fallbacks were
// served, but browse errors during the fault exceeded their bound.
func fixtureRun() *result.Run {
	return &result.Run{
		Version:  result.Version,
		Scenario: "dependency-latency",
		File:     "scenarios/dependency-latency.yaml",
		Description: "The link from the gateway to the product service gets 1.5 s slower, beyond the gateway's 1 s timeout.\n" +
			"It teaches the circuit breaker and the fallback <b>not bold</b>.",
		Design:    "designs/resilient.yaml",
		Runtime:   "local",
		Seed:      2,
		StartedAt: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
		Duration:  d("9s"),
		RunDir:    "runs/dependency-latency-1",
		History:   "history.jsonl",
		Verdict:   result.Failed,
		Reason:    "during:slow-product/error_rate browse: 12.5% vs <= 10%",
		Hint:      "lower the breaker's failure threshold so it opens sooner",
		Phases: []result.Phase{
			{Name: "before", Start: 0, End: d("2s")},
			{Name: "during:slow-product", Start: d("2s"), End: d("5s")},
			{Name: "after", Start: d("5s"), End: d("9s")},
		},
		Faults: []result.Fault{{
			Name: "slow-product", Type: "latency", Targets: []string{"gateway", "product"},
			At: d("2s"), For: d("3s"), Injected: d("2.01s"), Healed: d("5.02s"),
			Effect: &result.Effect{Configured: 1.5, Measured: 1.52, Unit: "s", Landed: true},
		}},
		Checks: []result.Check{
			{Name: "steady_state/error_rate", Kind: "error_rate", Phase: "steady_state", Passed: true, Figure: 0.002, Op: "<=", Threshold: 0.01, Unit: "ratio", Message: "0.2% of requests failed before the fault (bound 1%)"},
			{Name: "during:slow-product/fault_landed", Kind: "fault_landed", Phase: "during:slow-product", Passed: true, Figure: 1.52, Op: ">=", Threshold: 1.2, Unit: "s", Message: "the link added 1.52 s of the configured 1.5 s"},
			{Name: "during:slow-product/breaker_opened gateway->product", Kind: "breaker_opened", Phase: "during:slow-product", Passed: true, Figure: 0.6, Op: "<=", Threshold: 2, Unit: "s", Message: "the breaker opened 0.6 s after the fault"},
			{Name: "during:slow-product/fallback_served", Kind: "fallback_served", Phase: "during:slow-product", Passed: true, Figure: 48, Op: ">=", Threshold: 5, Unit: "count", Message: "48 fallback answers"},
			{Name: "during:slow-product/error_rate browse", Kind: "error_rate", Phase: "during:slow-product", Passed: false, Figure: 0.125, Op: "<=", Threshold: 0.1, Unit: "ratio", Message: "12.5% of browse requests failed | more than 10%", Detail: "15 of 120 requests"},
			{Name: "after/breaker_closed gateway->product", Kind: "breaker_closed", Phase: "after", Skipped: true, Op: "<=", Threshold: 3, Unit: "s", Message: "no breaker samples after the heal"},
			{Name: "after/latency p99", Kind: "latency", Phase: "after", Passed: true, Figure: 820, Op: "<=", Threshold: 1000, Unit: "ms", Message: "p99 820 ms"},
		},
		Load: result.Load{
			PlannedRate: 40, AchievedRate: 39.6, Requests: 356, Errors: 17,
			Journeys: map[string]result.Journey{
				"browse":      {Requests: 250, Errors: 15, P50: d("12ms"), P95: d("1.1s"), P99: d("1.6s")},
				"place_order": {Requests: 53, Errors: 1, P50: d("20ms"), P95: d("60ms"), P99: d("90ms")},
				"view_order":  {Requests: 53, Errors: 1, P50: d("15ms"), P95: d("40ms"), P99: d("70ms")},
			},
		},
		Topology: []result.Component{
			{Name: "gateway-1", Kind: "gateway", Service: "gateway"},
			{Name: "merchant-1", Kind: "service", Service: "merchant"},
			{Name: "order-1", Kind: "service", Service: "order"},
			{Name: "product-1", Kind: "service", Service: "product"},
			{Name: "product-2", Kind: "service", Service: "product"},
			{Name: "registry-1", Kind: "registry", Service: "registry"},
			{Name: "broker-1", Kind: "broker", Service: "broker"},
		},
		Links: []result.Link{
			{From: "gateway", To: "merchant"}, {From: "gateway", To: "order"}, {From: "gateway", To: "product"},
			{From: "order", To: "merchant"}, {From: "order", To: "product"}, {From: "order", To: "broker"},
			{From: "product", To: "broker"},
		},
	}
}

// invalidRun is a run whose fault never landed.
func invalidRun() *result.Run {
	return &result.Run{
		Version: result.Version, Scenario: "replica-crash", Runtime: "local", Seed: 3, Duration: d("12s"),
		Verdict: result.Invalid, Reason: "fault crash-product-2 never landed: product-2 was still serving",
		Hint: "check that the target names an instance of the system",
		Faults: []result.Fault{{Name: "crash-product-2", Type: "crash", Targets: []string{"product-2"}, At: d("3s"), Injected: d("3s"), Healed: d("8s"),
			Effect: &result.Effect{Configured: 1, Measured: 0, Unit: "", Landed: false, Detail: "instance still answered"}}},
		Checks: []result.Check{
			{Name: "during:crash-product-2/fault_landed", Kind: "fault_landed", Phase: "during:crash-product-2", Figure: 0, Op: ">=", Threshold: 1, Unit: "count", Message: "the instance kept answering"},
			{Name: "after/error_rate", Kind: "error_rate", Phase: "after", Passed: true, Figure: 0, Op: "<=", Threshold: 0.01, Unit: "ratio", Message: "no errors"},
		},
		Load: result.Load{PlannedRate: 50, AchievedRate: 50, Requests: 600},
	}
}

// expectedRun demonstrates a weak design: without a breaker the cascade must happen.
func expectedRun() *result.Run {
	return &result.Run{
		Version: result.Version, Scenario: "cascading-failure-no-breaker", Runtime: "local", Seed: 5, Duration: d("10s"),
		Verdict: result.Passed, Reason: "the expected failure happened",
		ExpectedFailure: &result.ExpectedFailure{Check: "during:slow-order/error_rate", Reason: "without a breaker every caller waits on the slow dependency", Observed: true},
		Checks: []result.Check{
			{Name: "during:slow-order/error_rate", Kind: "error_rate", Phase: "during:slow-order", Figure: 0.6, Op: "<=", Threshold: 0.05, Unit: "ratio", Message: "60% of requests failed"},
			{Name: "before/latency p99", Kind: "latency", Phase: "before", Passed: true, Figure: 35, Op: "<=", Threshold: 200, Unit: "ms", Message: "p99 35 ms"},
		},
		Phases: []result.Phase{{Name: "during:slow-order", Start: d("2s"), End: d("6s")}, {Name: "before", Start: 0, End: d("2s")}},
		Load:   result.Load{PlannedRate: 30, AchievedRate: 29, Requests: 290, Errors: 120},
	}
}

// synth describes a synthetic history.
type synth struct {
	requests int
	duration time.Duration
	faultAt  time.Duration
	faultFor time.Duration
	seed     uint64
	slow     float64 // multiplies latency during the fault
	// offset is when the load starts on the history's clock (the harness's, which starts
	// before the system is up); every other time of synth counts from load start.
	offset time.Duration
}

var fixtureSynth = synth{requests: 356, duration: 9 * time.Second, faultAt: 2010 * time.Millisecond, faultFor: 3010 * time.Millisecond, seed: 1, slow: 40}

// convergedAt is where writeHistory makes the last backlog series return to zero.
const convergedAt = 7500 * time.Millisecond

// writeHistory writes a synthetic history of a latency fault: browse slows and partly fails
// while the fault lasts, the breaker opens and closes, the outbox backlog and consumer lag
// rise and drain, and metrics are sampled every 250 ms.
func writeHistory(tb testing.TB, path string, s synth) {
	tb.Helper()
	f, err := os.Create(path)
	require.NoError(tb, err)
	bw := bufio.NewWriterSize(f, 1<<20)
	w := history.NewWriter(bw, time.Now(), history.WithFlushInterval(0))
	rng := rand.New(rand.NewPCG(s.seed, 7))
	heal := s.faultAt + s.faultFor
	put := func(t time.Duration, ev history.Event) {
		ev.T = max(t+s.offset, 1)
		require.NoError(tb, w.Write(ev))
	}
	put(0, history.PhaseEvent("before", history.PhaseStart))
	step := s.duration / time.Duration(max(s.requests, 1))
	nextMetric := time.Duration(0)
	injected, healed := false, false
	journeys := []string{"browse", "browse", "browse", "browse", "view_order", "place_order"}
	for i := range s.requests {
		start := time.Duration(i) * step
		if !injected && start >= s.faultAt {
			injected = true
			put(s.faultAt, history.PhaseEvent("during:slow-product", history.PhaseStart))
			put(s.faultAt, history.FaultEvent(history.Fault{Action: history.FaultInject, Name: "slow-product", Type: "latency", Target: "gateway->product",
				Configured: &history.Effect{Quantity: "added_latency", Value: 1.5, Unit: "s"}}))
		}
		if !healed && start >= heal {
			healed = true
			put(heal, history.FaultEvent(history.Fault{Action: history.FaultHeal, Name: "slow-product", Type: "latency", Target: "gateway->product"}))
			put(heal, history.PhaseEvent("during:slow-product", history.PhaseEnd))
		}
		for nextMetric <= start {
			writeMetrics(put, nextMetric, s.faultAt, heal)
			nextMetric += 250 * time.Millisecond
		}
		j := journeys[rng.IntN(len(journeys))]
		lat := time.Duration((5 + rng.ExpFloat64()*10) * float64(time.Millisecond))
		status, ok, fallback := 200, true, ""
		during := start >= s.faultAt && start < heal
		if during && j == "browse" {
			switch r := rng.Float64(); {
			case r < 0.5:
				fallback = "cached"
			case r < 0.65:
				status, ok = 504, false
				lat = time.Second
			default:
				lat = time.Duration(float64(lat) * s.slow)
			}
		}
		put(start+lat, history.RequestEvent(loadgen.Result{Seq: uint64(i), Journey: j, Method: "GET", Path: "/products",
			Planned: start + s.offset, Start: start + s.offset, Latency: lat, Status: status, OK: ok, Fallback: fallback}))
	}
	for nextMetric <= s.duration {
		writeMetrics(put, nextMetric, s.faultAt, heal)
		nextMetric += 250 * time.Millisecond
	}
	require.NoError(tb, w.Close())
	require.NoError(tb, bw.Flush())
	require.NoError(tb, f.Close())
}

func writeMetrics(put func(time.Duration, history.Event), t, faultAt, heal time.Duration) {
	state := 0.0
	switch {
	case t >= faultAt+600*time.Millisecond && t < heal+500*time.Millisecond:
		state = 2
	case t >= heal+500*time.Millisecond && t < heal+time.Second:
		state = 1
	}
	put(t, history.MetricEvent(history.Metric{Component: "gateway-1", Name: "faultline_breaker_state",
		Labels: map[string]string{"caller": "gateway", "dependency": "product"}, Value: state}))
	put(t, history.MetricEvent(history.Metric{Component: "gateway-1", Name: "faultline_breaker_state",
		Labels: map[string]string{"caller": "gateway", "dependency": "merchant"}, Value: 0}))
	backlog := 0.0
	if t >= faultAt+time.Second && t < convergedAt-500*time.Millisecond {
		backlog = float64((t - faultAt) / (100 * time.Millisecond))
	}
	lag := 0.0
	if t >= faultAt+time.Second && t < convergedAt {
		lag = backlog/2 + 1
	}
	put(t, history.MetricEvent(history.Metric{Component: "order-1", Name: "faultline_outbox_backlog", Value: backlog}))
	put(t, history.MetricEvent(history.Metric{Component: "product-1", Name: "faultline_consumer_lag", Value: lag}))
	put(t, history.MetricEvent(history.Metric{Component: "product-1", Name: "up", Value: 1}))
}

// fixtureHistory writes the fixture's history into a temporary directory.
func fixtureHistory(t *testing.T) string {
	t.Helper()
	path := fmt.Sprintf("%s/history.jsonl", t.TempDir())
	writeHistory(t, path, fixtureSynth)
	return path
}
