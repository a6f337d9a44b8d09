package checks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

func TestEvaluateErrors(t *testing.T) {
	sc := scenario(nil)
	ctx := context.Background()
	_, err := checks.Evaluate(ctx, nil, "x", checks.Inputs{})
	assert.EqualError(t, err, "evaluate checks: scenario is nil")
	_, err = checks.Evaluate(ctx, sc, "x", checks.Inputs{})
	assert.EqualError(t, err, "evaluate checks: no phases; compute them with Phases")
	_, err = checks.Evaluate(ctx, sc, filepath.Join(t.TempDir(), "missing.jsonl"), inputs(sc))
	assert.ErrorContains(t, err, "evaluate checks: open history")

	path := writeHistory(t, []history.Event{req(time.Second, ms)})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = checks.Evaluate(cancelled, sc, path, inputs(sc))
	assert.ErrorIs(t, err, context.Canceled)
}

// A harness killed mid-write leaves half a line: the events before it still count.
func TestTruncatedHistoryStillEvaluates(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) {
		sc.Expect.Overall = []scenarios.Check{check(&scenarios.ErrorRateCheck{Max: 0.5})}
	})
	path := writeHistory(t, []history.Event{req(time.Second, ms), req(2*time.Second, ms, failed(503, ""))})
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"t":3000000000,"kind":"request","request":{"sta`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	got, err := checks.Evaluate(context.Background(), sc, path, inputs(sc, slowFault))
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, 0.5, got[0].Figure)
	assert.True(t, got[0].Passed)
	assert.Contains(t, got[0].Detail, "1 unreadable history lines were skipped")
}

// benchScenario is dependency-latency-like: per-phase error rate and latency, breakers,
// fallbacks and a metric. (A system's own final-state kind, such as the reference
// system's consistency, is not built in and not measured here.)
func benchScenario() *scenarios.Scenario {
	return scenario(func(sc *scenarios.Scenario) {
		sc.Load.Duration = scenarios.Duration(100 * sec)
		sc.Faults[0].At, sc.Faults[0].For = scenarios.Duration(30*sec), scenarios.Duration(40*sec)
		sc.SteadyState = []scenarios.Check{check(&scenarios.ErrorRateCheck{Max: 0.01}), check(&scenarios.LatencyCheck{Percentile: "p99", Max: scenarios.Duration(300 * ms)})}
		sc.Expect.During["slow"] = []scenarios.Check{
			check(&scenarios.BreakerOpenedCheck{Caller: "gateway", Dependency: "product", Within: scenarios.Duration(2 * sec)}),
			check(&scenarios.FallbackServedCheck{Caller: "gateway", Dependency: "product", Min: 5}),
			check(&scenarios.ErrorRateCheck{Max: 0.1, Journey: "browse"}),
			check(&scenarios.LatencyCheck{Percentile: "p90", Max: scenarios.Duration(300 * ms), Journey: "browse"}),
		}
		sc.Expect.After = []scenarios.Check{check(&scenarios.BreakerClosedCheck{Caller: "gateway", Dependency: "product", Within: scenarios.Duration(3 * sec)})}
		sc.Expect.Overall = []scenarios.Check{
			check(&scenarios.MetricCheck{Component: "gateway", Metric: "faultline_policy_events_total", Op: "<=", Value: ptr(1e9), Reduce: "max"}),
		}
	})
}

// writeBenchHistory writes n requests over 100 s (a share of them placements) plus a
// scrape of a few series every 100 ms.
func writeBenchHistory(b *testing.B, n int, placeEvery int) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "history.jsonl")
	w, err := history.Create(p, time.Now(), history.WithFlushInterval(0))
	require.NoError(b, err)
	span := 100 * sec
	nextScrape := time.Duration(0)
	for i := range n {
		start := time.Duration(int64(span) * int64(i) / int64(n))
		for nextScrape <= start {
			for _, comp := range []string{"gateway-1", "gateway-2"} {
				state := 0.0
				if nextScrape > 31*sec && nextScrape < 70*sec {
					state = 2
				}
				for _, ev := range []history.Event{
					sample(nextScrape, comp, "faultline_breaker_state", state, "caller", "gateway", "dependency", "product"),
					sample(nextScrape, comp, "faultline_policy_events_total", float64(nextScrape/sec), "caller", "gateway", "dependency", "product", "event", "fallback"),
				} {
					require.NoError(b, w.Write(ev))
				}
			}
			nextScrape += 100 * ms
		}
		r := loadgen.Result{Seq: uint64(i + 1), Journey: "browse", Method: "GET", Path: "/products/p-003",
			Start: start, Latency: time.Duration(5+i%40) * ms, Status: 200, OK: true, ServedBy: "gateway-1"}
		if i%97 == 0 {
			r.Status, r.OK, r.Error = 503, false, ""
		}
		if placeEvery > 0 && i%placeEvery == 0 {
			r.Journey, r.Method, r.Path, r.Status, r.OK = "place_order", "POST", "/orders", 201, true
			r.Key, r.Created, r.Attrs = loadgen.KeyFor(1, r.Seq), fmt.Sprintf("o-%d", i), map[string]string{"product": "p-003", "quantity": "1"}
		}
		ev := history.RequestEvent(r)
		ev.T = r.End()
		require.NoError(b, w.Write(ev))
	}
	require.NoError(b, w.Close())
	return p
}

// BenchmarkEvaluateMillion evaluates a 1 M-request history and reports the cost per
// request and the peak heap in use while evaluating. "browse" has no placements: its
// peak heap is what any run costs, whatever its length; "mixed" places an order every
// 7th request.
func BenchmarkEvaluateMillion(b *testing.B) {
	const n = 1_000_000
	for _, bc := range []struct {
		name       string
		placeEvery int
	}{{"browse", 0}, {"mixed", 7}} {
		b.Run(bc.name, func(b *testing.B) {
			path := writeBenchHistory(b, n, bc.placeEvery)
			sc := benchScenario()
			in := checks.Inputs{Phases: checks.Phases(sc, []result.Fault{{Name: "slow", Injected: result.Duration(30 * sec), Healed: result.Duration(70 * sec)}}, 0, 100*sec)}
			var peak uint64
			for b.Loop() {
				runtime.GC()
				var base runtime.MemStats
				runtime.ReadMemStats(&base)
				done := make(chan struct{})
				var wg sync.WaitGroup
				wg.Go(func() {
					t := time.NewTicker(20 * time.Millisecond)
					defer t.Stop()
					var ms runtime.MemStats
					for {
						select {
						case <-done:
							return
						case <-t.C:
							runtime.ReadMemStats(&ms)
							if ms.HeapInuse > base.HeapInuse {
								peak = max(peak, ms.HeapInuse-base.HeapInuse)
							}
						}
					}
				})
				got, err := checks.Evaluate(context.Background(), sc, path, in)
				close(done)
				wg.Wait()
				if err != nil {
					b.Fatal(err)
				}
				if len(got) == 0 {
					b.Fatal("no checks")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/request")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		})
	}
}

// A scenario played in a console session is judged on its own events: those before
// HistoryFrom (the session's earlier load, here failures inside the scenario's phases) are
// not read, and an offset inside a line starts at the next whole one.
func TestHistoryFromJudgesTheLaterPartOnly(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) {
		sc.Expect.Overall = []scenarios.Check{check(&scenarios.ErrorRateCheck{Max: 0.5})}
	})
	earlier := []history.Event{req(time.Second, ms, failed(503, "")), req(1500*time.Millisecond, ms, failed(503, ""))}
	later := []history.Event{req(2*time.Second, ms), req(3*time.Second, ms)}
	path := writeHistory(t, append(earlier, later...))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lineEnds := []int64{}
	for i, c := range b {
		if c == '\n' {
			lineEnds = append(lineEnds, int64(i+1))
		}
	}
	require.Len(t, lineEnds, 4)
	for _, tc := range []struct {
		name   string
		from   int64
		want   float64
		passed bool
	}{
		{"whole history", 0, 0.5, true}, // 2 of 4 failed: at the bound
		{"from the third line", lineEnds[1], 0, true},
		{"from inside the second line", lineEnds[0] + 3, 0, true},
		{"from inside the first line", 3, 1.0 / 3, true},
		{"from the second line", lineEnds[0], 1.0 / 3, true},
		{"past the end", lineEnds[3] + 10, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := inputs(sc, slowFault)
			in.HistoryFrom = tc.from
			got, err := checks.Evaluate(context.Background(), sc, path, in)
			require.NoError(t, err)
			require.Len(t, got, 1)
			if !tc.passed { // nothing left to judge: skipped, never passed
				assert.True(t, got[0].Skipped, "skipped: %+v", got[0])
				return
			}
			assert.InDelta(t, tc.want, got[0].Figure, 1e-9)
			assert.True(t, got[0].Passed, "%+v", got[0])
		})
	}
}
