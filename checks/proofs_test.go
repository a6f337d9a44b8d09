package checks_test

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// proof is one synthetic history (or live target) on which a check kind must pass or must
// fail. Every registered kind needs at least one of each, at the boundary of its threshold
// where it has one: a check is only as good as the case that fails it.
type proof struct {
	name string
	pass bool
	// judge evaluates the check and returns the one result judged.
	judge func(t *testing.T) result.Check
}

// evalOne evaluates one check placed in expect.during.slow (or overall) of the fixture run
// (load 0-10 s, fault slow 2-6 s) and returns the result named name.
func evalOne(during bool, c scenarios.Check, events []history.Event, mod func(*checks.Inputs), name string) func(t *testing.T) result.Check {
	return func(t *testing.T) result.Check {
		sc := scenario(func(sc *scenarios.Scenario) {
			if during {
				sc.Expect.During["slow"] = []scenarios.Check{c}
			} else {
				sc.Expect.Overall = []scenarios.Check{c}
			}
		})
		in := inputs(sc, slowFault)
		if mod != nil {
			mod(&in)
		}
		return one(t, evaluate(t, sc, events, in), name)
	}
}

// nWith returns n requests spread over the fault (2-6 s), the first k with opts.
func nWith(n, k int, lat time.Duration, opts ...reqOpt) []history.Event {
	var out []history.Event
	for i := range n {
		start := 2*sec + time.Duration(i)*(4*sec)/time.Duration(n)
		if i < k {
			out = append(out, req(start, lat, opts...))
		} else {
			out = append(out, req(start, 20*ms))
		}
	}
	return out
}

func proofs() map[string][]proof {
	d := func(v time.Duration) scenarios.Duration { return scenarios.Duration(v) }
	errRate := check(&scenarios.ErrorRateCheck{Max: 0.1})
	p90 := check(&scenarios.LatencyCheck{Percentile: "p90", Max: d(600 * ms)})
	opened := check(&scenarios.BreakerOpenedCheck{Caller: "gateway", Dependency: "product", Within: d(2 * sec)})
	closed := check(&scenarios.BreakerClosedCheck{Caller: "gateway", Dependency: "product", Within: d(3 * sec)})
	fb := check(&scenarios.FallbackServedCheck{Min: 5})
	fo := check(&scenarios.FailoverCheck{MaxErrorWindow: d(sec)})
	tput := check(&scenarios.ThroughputCheck{Min: 0.9})
	landed := check(&scenarios.FaultLandedCheck{})
	landedTight := check(&scenarios.FaultLandedCheck{Tolerance: 0.0625})
	metric := check(&scenarios.MetricCheck{Component: "order", Metric: "faultline_outbox_backlog", Op: "<=", Value: ptr(5.0), Reduce: "max"})
	withEffect := func(measured float64) func(*checks.Inputs) {
		return func(in *checks.Inputs) {
			f := slowFault
			// The fault's own measurement holds it to ± 0.1 s (faults decide Landed).
			f.Effect = &result.Effect{Configured: 1, Measured: measured, Unit: "s", Tolerance: 0.1,
				Landed: math.Abs(measured-1) <= 0.1+1e-9}
			in.Faults = []result.Fault{f}
		}
	}
	failWindow := func(last time.Duration) []history.Event {
		return cat(spread(20, 2, 6), []history.Event{
			req(2500*ms, 100*ms, failed(502, "")),     // first failure completes at 2.6 s
			req(2500*ms, last-2500*ms, failed(0, "")), // last one completes at last
		})
	}
	wantedOpen := []history.Event{breakerSample(2500*ms, "gateway-1", 0)}

	return map[string][]proof{
		scenarios.CheckErrorRate: {
			{"10 of 100 failed at max 10%", true, evalOne(true, errRate, nWith(100, 10, 20*ms, failed(503, "")), nil, "during:slow/error_rate")},
			{"11 of 100 failed at max 10%", false, evalOne(true, errRate, nWith(100, 11, 20*ms, failed(503, "")), nil, "during:slow/error_rate")},
		},
		scenarios.CheckLatency: {
			{"p90 exactly 600 ms", true, evalOne(true, p90, nWith(10, 2, 600*ms), nil, "during:slow/latency_p90")},
			{"p90 601 ms", false, evalOne(true, p90, nWith(10, 2, 601*ms), nil, "during:slow/latency_p90")},
			{"p90 is a timeout at 1 s", false, evalOne(true, p90, nWith(10, 2, sec, failed(0, "timeout")), nil, "during:slow/latency_p90")},
		},
		scenarios.CheckBreakerOpened: {
			{"opened exactly within 2 s", true, evalOne(true, opened, append(wantedOpen, breakerSample(4*sec, "gateway-1", 2)), nil, "during:slow/breaker_opened/gateway->product")},
			{"opened 1 ms late", false, evalOne(true, opened, append(wantedOpen, breakerSample(4*sec+ms, "gateway-1", 2)), nil, "during:slow/breaker_opened/gateway->product")},
			{"opened only after the heal", false, evalOne(true, check(&scenarios.BreakerOpenedCheck{Caller: "gateway", Dependency: "product", Within: d(10 * sec)}),
				[]history.Event{breakerSample(6*sec, "gateway-1", 0), breakerSample(6200*ms, "gateway-1", 2)}, nil, "during:slow/breaker_opened/gateway->product")},
		},
		scenarios.CheckBreakerClosed: {
			{"closed exactly 3 s after the heal", true, evalOne(true, closed, []history.Event{breakerSample(3*sec, "gateway-1", 2), breakerSample(9*sec, "gateway-1", 0)}, nil, "during:slow/breaker_closed/gateway->product")},
			{"closed 1 ms late", false, evalOne(true, closed, []history.Event{breakerSample(3*sec, "gateway-1", 2), breakerSample(9*sec+ms, "gateway-1", 0)}, nil, "during:slow/breaker_closed/gateway->product")},
			{"never opened", false, evalOne(true, closed, []history.Event{breakerSample(3*sec, "gateway-1", 0), breakerSample(7*sec, "gateway-1", 0)}, nil, "during:slow/breaker_closed/gateway->product")},
		},
		scenarios.CheckFallbackServed: {
			{"5 fallbacks at min 5", true, evalOne(true, fb, nWith(10, 5, 20*ms, fallback("cached")), nil, "during:slow/fallback_served")},
			{"4 fallbacks at min 5", false, evalOne(true, fb, nWith(10, 4, 20*ms, fallback("cached")), nil, "during:slow/fallback_served")},
		},
		scenarios.CheckFailover: {
			{"errors for exactly 1 s", true, evalOne(true, fo, failWindow(3600*ms), nil, "during:slow/failover")},
			{"errors for 1.001 s", false, evalOne(true, fo, failWindow(3601*ms), nil, "during:slow/failover")},
		},
		scenarios.CheckFaultLanded: {
			{"1.1 s at its own ± 0.1 s", true, evalOne(true, landed, nil, withEffect(1.1), "during:slow/fault_landed")},
			{"1.11 s at its own ± 0.1 s", false, evalOne(true, landed, nil, withEffect(1.11), "during:slow/fault_landed")},
			{"6.25% off at the check's 6.25%", true, evalOne(true, landedTight, nil, withEffect(1.0625), "during:slow/fault_landed")},
			{"6.26% off at the check's 6.25%", false, evalOne(true, landedTight, nil, withEffect(1.0626), "during:slow/fault_landed")},
		},
		scenarios.CheckThroughput: {
			{"36 of 40 planned at min 90%", true, evalOne(true, tput, nWith(36, 0, 0), nil, "during:slow/throughput")},
			{"35 of 40 planned at min 90%", false, evalOne(true, tput, nWith(35, 0, 0), nil, "during:slow/throughput")},
		},
		scenarios.CheckMetric: {
			{"max exactly 5 at <= 5", true, evalOne(true, metric, []history.Event{sample(3*sec, "order-1", "faultline_outbox_backlog", 5)}, nil, "during:slow/metric/order/faultline_outbox_backlog")},
			{"max 5.5 at <= 5", false, evalOne(true, metric, []history.Event{sample(3*sec, "order-1", "faultline_outbox_backlog", 5.5)}, nil, "during:slow/metric/order/faultline_outbox_backlog")},
		},
		scenarios.CheckHTTPProbe: {
			{"answers 200 with the body", true, probe(http.StatusOK, "ready")},
			{"answers 503", false, probe(http.StatusServiceUnavailable, "ready")},
			{"answers 200 without the body", false, probe(http.StatusOK, "starting")},
		},
		scenarios.CheckCommand: {
			{"exits 0", true, command("true")},
			{"exits 1", false, command("false")},
		},
	}
}

func probe(code int, body string) func(t *testing.T) result.Check {
	return func(t *testing.T) result.Check {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return checks.Probe(context.Background(), &scenarios.HTTPProbeCheck{URL: "/health", BodyContains: "ready"}, srv.URL, "")
	}
}

func command(prog string) func(t *testing.T) result.Check {
	return func(t *testing.T) result.Check {
		return checks.RunCommand(context.Background(), &scenarios.CommandCheck{Run: []string{prog}}, t.TempDir())
	}
}

// TestCheckProofs runs every proof: each must pass or fail as stated, never be skipped.
func TestCheckProofs(t *testing.T) {
	for kind, cases := range proofs() {
		t.Run(kind, func(t *testing.T) {
			for _, p := range cases {
				t.Run(p.name, func(t *testing.T) {
					c := p.judge(t)
					require.False(t, c.Skipped, "not evaluated: %s", c.Message)
					assert.Equal(t, kind, c.Kind)
					assert.Equal(t, p.pass, c.Passed, "%s", c.Message)
				})
			}
		})
	}
}

// TestEveryCheckKindCanFail fails when a registered check kind has no case on which it
// must fail and none on which it must pass: a kind cannot be added without its proofs.
func TestEveryCheckKindCanFail(t *testing.T) {
	ps := proofs()
	for _, kind := range scenarios.CheckKinds() {
		var pass, fail int
		for _, p := range ps[kind] {
			if p.pass {
				pass++
			} else {
				fail++
			}
		}
		assert.Positive(t, fail, "check kind %q has no case on which it must fail in proofs()", kind)
		assert.Positive(t, pass, "check kind %q has no case on which it must pass in proofs()", kind)
	}
}
