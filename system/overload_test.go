package system_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/observe"
	"github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/system"
)

// Phases of the overload run, as offsets of the load's planned schedule.
const (
	ovBaseline = 4 * time.Second // at a quarter of capacity
	ovOverload = 6 * time.Second // at twice capacity
	ovRecovery = 8 * time.Second // back at a quarter of capacity
	ovStep     = 100 * time.Millisecond
	// ovRecoverWithin is issue 6's promise: p99 and error rate are back at baseline within
	// 5 s after the overload stops.
	ovRecoverWithin = 5 * time.Second
	// ovClients distinct JWT subjects share the load, so that the per-client rate limit
	// (ClientRPS per subject) is not what sheds: this test is about the in-flight cap.
	ovClients = 64
)

// overloadEnv switches the overload test on. It saturates both cores for ~25 s on purpose,
// so it runs from make bench and not in every go test or CI run, where it would slow every
// other test down and measure their noise.
const overloadEnv = "FAULTLINE_OVERLOAD"

// rssCeiling is the most resident memory any process may use during the overload. Idle,
// every process of the reference system holds 30–60 MiB. The gateway is the one that sees
// the flood: at most MaxInFlight (256) admitted requests, each bounded by the 64 KiB body
// limit plus its response and a goroutine (≈ 100 KiB together, 25 MiB in all), and one
// connection per load worker (1024 workers × ≈ 40 KiB of buffers and goroutine stacks,
// 40 MiB). The services behind it see at most the gateway's bulkheads (64 calls per edge).
// 256 MiB is therefore about twice the worst figure the limits allow; a gateway that queued
// without bound would pass it within seconds at twice capacity.
const rssCeiling = 256 << 20

// TestOverloadShedsAndRecovers measures the system's capacity, drives it at twice that, and
// checks issue 6's promises: the gateway sheds (503/429 with Retry-After) instead of
// queueing, admitted requests stay within the latency the design's admission limits allow,
// no process's memory passes rssCeiling, and p99 and error rate are back at baseline
// within 5 s after the overload stops.
func TestOverloadShedsAndRecovers(t *testing.T) {
	if os.Getenv(overloadEnv) == "" {
		t.Skipf("set %s=1 to run: it saturates the machine for ~25 s (make bench runs it)", overloadEnv)
	}
	sys, _ := startSystem(t)
	d := sys.Design()
	require.Positive(t, d.Gateway.MaxInFlight, "the default design must cap the gateway's in-flight requests")
	tokens := make([]string, ovClients)
	for i := range tokens {
		tok, err := sys.Token("overload-"+strconv.Itoa(i), time.Hour)
		require.NoError(t, err)
		tokens[i] = tok
	}
	journeys := reference.Journeys(func(c int) string { return tokens[c] })
	mix := map[string]int{reference.JourneyBrowse: 70, reference.JourneyViewOrder: 20, reference.JourneyPlaceOrder: 10}

	capacity, fullP99 := measureCapacity(t, sys, d.Gateway.MaxInFlight, journeys, mix)
	t.Logf("capacity: %.0f req/s, p99 %s (closed loop, %d workers = max_in_flight)", capacity, fullP99, d.Gateway.MaxInFlight)

	rss := watchRSS(t, sys)
	var mu sync.Mutex
	var results []loadgen.Result
	low := loadgen.Rate{Freq: int(max(capacity/4, 10)), Per: time.Second}
	high := loadgen.Rate{Freq: int(2 * capacity), Per: time.Second}
	spec := loadgen.Spec{
		Rate: low,
		Ramp: []loadgen.Step{
			{Rate: low, Duration: ovBaseline - ovStep},
			{Rate: high, Duration: ovStep}, {Rate: high, Duration: ovOverload - ovStep},
			{Rate: low, Duration: ovStep}, {Rate: low, Duration: ovRecovery - ovStep},
		},
		MaxWorkers: 1024,
		Timeout:    10 * time.Second,
		Clients:    ovClients,
		Seed:       6,
		Journeys:   journeys,
		Mix:        mix,
	}
	retryAfter := probeShedHeaders(t, sys, tokens[0], ovBaseline, ovOverload)
	sum, err := loadgen.Run(t.Context(), spec, sys.GatewayURL(), func(r loadgen.Result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	})
	require.NoError(t, err)
	peak := rss()
	shedHeaders := retryAfter()
	t.Logf("load: planned %.0f/s achieved %.0f/s, statuses %v, errors %v", sum.PlannedRate, sum.AchievedRate, sum.Statuses, sum.Errors)

	base := window(results, 0, ovBaseline)
	over := window(results, ovBaseline, ovBaseline+ovOverload)
	overload := over.admitted()
	recov := window(results, ovBaseline+ovOverload+ovRecoverWithin, ovBaseline+ovOverload+ovRecovery)
	t.Logf("baseline: %s", base)
	t.Logf("overload: %s; admitted: %s", over, overload)
	for _, j := range []string{reference.JourneyBrowse, reference.JourneyViewOrder, reference.JourneyPlaceOrder} {
		var js []loadgen.Result
		for _, r := range overload.all {
			if r.Journey == j {
				js = append(js, r)
			}
		}
		t.Logf("admitted %s: %d, p50 %s, p99 %s", j, len(js), pct(js, 0.5), pct(js, 0.99))
	}
	for sec := ovBaseline; sec < ovBaseline+ovOverload; sec += time.Second {
		w := window(results, sec, sec+time.Second).admitted()
		t.Logf("admitted in second %s: %d, p50 %s, p99 %s", sec, w.n, pct(w.all, 0.5), w.p99)
	}
	t.Logf("recovered (from +%s): %s", ovRecoverWithin, recov)
	t.Logf("peak RSS: %v", fmtRSS(peak))

	// The load must really have been twice the capacity, or nothing below means anything.
	require.GreaterOrEqual(t, float64(over.n), 0.9*2*capacity*ovOverload.Seconds(),
		"the load generator fell short of twice the capacity")
	assert.Positive(t, over.shed, "the gateway must shed at twice its capacity")
	require.NotEmpty(t, shedHeaders, "the prober saw no shed answer")
	for _, h := range shedHeaders {
		s, err := strconv.Atoi(h)
		assert.NoError(t, err, "Retry-After %q must be whole seconds", h)
		assert.GreaterOrEqual(t, s, 1, "Retry-After %q", h)
	}

	// The bound admission control promises: the gateway admits at most MaxInFlight
	// requests at a time and each waits at most MaxQueueWait for a slot, so an admitted
	// request sees the gateway running full — fullP99, measured closed-loop with exactly
	// that many users — plus the wait, slowed down by the extra work of twice the load:
	// the load generator shares these cores and sends twice the requests, and the gateway
	// parses and answers the shed half. That leaves admitted requests between a third and a
	// half of the CPU they had at capacity, hence 4 × fullP99. Without shedding, the queue
	// would instead grow by `capacity` requests every second, adding a second of latency per
	// second of overload: far beyond this bound by the end of the overload.
	bound := 4*fullP99 + d.Gateway.MaxQueueWait.Std()
	t.Logf("admitted p99 bound: %s (4 × p99 at max_in_flight %d + max_queue_wait %s)", bound, d.Gateway.MaxInFlight, d.Gateway.MaxQueueWait)
	assert.LessOrEqual(t, overload.p99, bound, "p99 of admitted requests at twice capacity")
	// And it does not climb: a queue growing without bound makes the last seconds of the
	// overload the slowest.
	first := window(results, ovBaseline, ovBaseline+2*time.Second).admitted()
	last := window(results, ovBaseline+ovOverload-2*time.Second, ovBaseline+ovOverload).admitted()
	assert.LessOrEqual(t, last.p99, max(first.p99, fullP99)*3/2, "admitted p99 climbed during the overload: first 2 s %s, last 2 s %s", first.p99, last.p99)

	for name, b := range peak {
		assert.Less(t, b, float64(rssCeiling), "peak RSS of %s", name)
	}
	require.Len(t, peak, len(sys.Components()), "every process must have been sampled")

	// Back at baseline within 5 s: the tail and the error rate of the remaining recovery
	// window are those of the baseline, within the spread of a shared machine (twice the
	// baseline p99, or 25 ms more, whichever is larger; one point of error rate).
	assert.LessOrEqual(t, recov.p99, max(2*base.p99, base.p99+25*time.Millisecond), "p99 %s after the overload stopped", ovRecoverWithin)
	assert.LessOrEqual(t, recov.errRate(), base.errRate()+0.01, "error rate %s after the overload stopped", ovRecoverWithin)
}

// measureCapacity runs the mix closed-loop with workers virtual users (each sends its next
// request as soon as the previous one is answered) for 4 s, and returns the rate of
// successful answers and the p99 latency. With as many workers as the gateway admits at a
// time, this is the gateway running full but shedding nothing.
func measureCapacity(t *testing.T, sys *system.System, workers int, journeys []loadgen.Journey, mix map[string]int) (float64, time.Duration) {
	t.Helper()
	spec := loadgen.Spec{
		Rate:       loadgen.Rate{Freq: 100_000, Per: time.Second},
		Duration:   4 * time.Second,
		MaxWorkers: workers,
		Timeout:    10 * time.Second,
		Clients:    ovClients,
		Seed:       5,
		Journeys:   journeys,
		Mix:        mix,
	}
	var rs []loadgen.Result
	_, err := loadgen.Run(t.Context(), spec, sys.GatewayURL(), func(r loadgen.Result) { rs = append(rs, r) })
	require.NoError(t, err)
	// The first second fills the pipeline; the rate is taken over the rest.
	var ok int
	var first, last time.Duration = math.MaxInt64, 0
	var steady []loadgen.Result
	for _, r := range rs {
		if r.Start < time.Second {
			continue
		}
		steady = append(steady, r)
		if r.OK {
			ok++
		}
		first, last = min(first, r.Start), max(last, r.End())
	}
	require.Greater(t, last, first, "no request completed while measuring capacity")
	c := float64(ok) / (last - first).Seconds()
	require.Greater(t, c, 20.0, "the system answered almost nothing while measuring capacity")
	return c, p99(steady)
}

// watchRSS scrapes every process's resident memory every 250 ms until the returned
// function is called, which returns the peak per process.
func watchRSS(t *testing.T, sys *system.System) func() map[string]float64 {
	t.Helper()
	targets := func() []observe.Target {
		var out []observe.Target
		for _, c := range sys.Components() {
			out = append(out, observe.Target{Component: c.Name, URL: c.AdminURL() + "/metrics"})
		}
		return out
	}
	sc, err := observe.NewScraper(targets, observe.WithInterval(250*time.Millisecond), observe.WithPrefixes("process_resident_memory_bytes"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	peak := map[string]float64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sc.Run(ctx, func(s observe.Sample) {
			if s.Name == "process_resident_memory_bytes" {
				peak[s.Component] = max(peak[s.Component], s.Value)
			}
		})
	}()
	stop := func() map[string]float64 { cancel(); <-done; return peak }
	t.Cleanup(func() { stop() })
	return stop
}

// probeShedHeaders sends one request every 20 ms during the overload window, next to the
// load, and returns the Retry-After headers of the answers that were shed (503 or 429).
func probeShedHeaders(t *testing.T, sys *system.System, token string, from, length time.Duration) func() []string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	var headers []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !sleepCtx(ctx, from+time.Second) { // the queue needs a moment to fill
			return
		}
		end := time.Now().Add(length - 2*time.Second)
		for time.Now().Before(end) && ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sys.GatewayURL()+"/products/"+config.ProductID(0), nil)
			req.Header.Set("Authorization", "Bearer "+token)
			if resp, err := client.Do(req); err == nil {
				if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
					headers = append(headers, resp.Header.Get("Retry-After"))
				}
				_ = resp.Body.Close()
			}
			sleepCtx(ctx, 20*time.Millisecond)
		}
	}()
	stop := func() []string { cancel(); <-done; return headers }
	t.Cleanup(func() { stop() })
	return stop
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// phaseStats summarises the requests planned within one phase.
type phaseStats struct {
	n, shed, failed int
	p99             time.Duration
	all             []loadgen.Result
}

func (s phaseStats) errRate() float64 {
	if s.n == 0 {
		return 0
	}
	return float64(s.failed) / float64(s.n)
}

func (s phaseStats) String() string {
	return fmt.Sprintf("%d requests, %d shed, %.2f%% failed, p99 %s", s.n, s.shed, 100*s.errRate(), s.p99.Round(time.Millisecond))
}

func shedStatus(code int) bool {
	return code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests
}

// window gathers the results planned in [from, to). Shed answers (503, 429) count as
// failures; requests with no answer count with their full latency.
func window(rs []loadgen.Result, from, to time.Duration) phaseStats {
	var s phaseStats
	for _, r := range rs {
		if r.Planned < from || r.Planned >= to {
			continue
		}
		s.all = append(s.all, r)
		s.n++
		if shedStatus(r.Status) {
			s.shed++
		}
		if !r.OK {
			s.failed++
		}
	}
	s.p99 = p99(s.all)
	return s
}

// admitted keeps the requests the gateway did not shed.
func (s phaseStats) admitted() phaseStats {
	var out phaseStats
	for _, r := range s.all {
		if shedStatus(r.Status) {
			continue
		}
		out.all = append(out.all, r)
		out.n++
		if !r.OK {
			out.failed++
		}
	}
	out.p99 = p99(out.all)
	return out
}

func p99(rs []loadgen.Result) time.Duration { return pct(rs, 0.99) }

// pct is the q-quantile of the latencies of rs (nearest rank).
func pct(rs []loadgen.Result, q float64) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	lat := make([]time.Duration, len(rs))
	for i, r := range rs {
		lat[i] = r.Latency
	}
	slices.Sort(lat)
	return lat[max(0, min(len(lat)-1, int(math.Ceil(q*float64(len(lat))))-1))]
}

func fmtRSS(m map[string]float64) string {
	var out string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out += fmt.Sprintf(" %s=%.0fMiB", k, m[k]/(1<<20))
	}
	return out
}
