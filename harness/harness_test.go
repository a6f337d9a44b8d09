package harness_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/reference-services/serve"
	"github.com/faultline-dev/faultline/reference/consistency"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/systems"
)

// TestMain lets the test binary double as the faultline binary: the components a run
// starts are this binary re-executed with FAULTLINE_SERVE_CONFIG set.
func TestMain(m *testing.M) {
	serve.FromEnv()
	os.Exit(m.Run())
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runScenario runs sc with this test binary as the components' executable.
func runScenario(t *testing.T, sc *scenarios.Scenario, opts ...harness.Option) (*result.Run, string) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var phases []string
	opts = append([]harness.Option{
		harness.WithSystemFor(systems.For), harness.WithCommand(exe), harness.WithDir(dir), harness.WithLogger(log),
		harness.WithProgress(func(p harness.Progress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
		}),
	}, opts...)
	res, err := harness.Run(t.Context(), sc, opts...)
	require.NoError(t, err, "reason: %s", res.Reason)
	t.Logf("%s: %s %s (phases %v)", sc.Name, res.Verdict, res.Reason, phases)
	return res, dir
}

func loadTestdata(t *testing.T, name string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Load(filepath.Join("testdata", name))
	require.NoError(t, err)
	return sc
}

func TestBaselinePasses(t *testing.T) {
	sc, err := scenarios.Builtin("baseline")
	require.NoError(t, err)
	res, dir := runScenario(t, sc)

	assert.Equal(t, result.Passed, res.Verdict, "reason: %s", res.Reason)
	saved, err := result.LoadFile(filepath.Join(dir, harness.ResultFile))
	require.NoError(t, err)
	assert.Equal(t, res.Verdict, saved.Verdict)
	require.NotEmpty(t, saved.Checks)
	kinds := map[string]bool{}
	for _, c := range saved.Checks {
		kinds[c.Kind] = true
		assert.True(t, c.Passed, "%s: %s", c.Name, c.Message)
		assert.NotEmpty(t, c.Message, c.Name)
	}
	for _, want := range []string{scenarios.CheckErrorRate, scenarios.CheckLatency, scenarios.CheckThroughput, consistency.Kind} {
		assert.True(t, kinds[want], "no %s check in %v", want, kinds)
	}
	for _, c := range saved.Checks {
		if c.Kind == scenarios.CheckThroughput {
			assert.InDelta(t, 1.0, c.Figure, 0.1, "throughput figure is the achieved share of the plan")
		}
	}
	assert.Greater(t, saved.Load.Requests, int64(200), "6 s at 40/s")
	assert.NotEmpty(t, saved.Topology)
	// Every caller's edges to the registry and between services have proxies.
	assert.Contains(t, saved.Links, result.Link{From: "gateway", To: "product-1"})
	assert.Contains(t, saved.Links, result.Link{From: "order-1", To: "broker-1"})

	var metrics, requests int
	r, err := history.Open(filepath.Join(dir, harness.HistoryFile))
	require.NoError(t, err)
	defer r.Close()
	for ev, err := range r.Events() {
		require.NoError(t, err)
		switch ev.Kind {
		case history.KindMetric:
			metrics++
		case history.KindRequest:
			requests++
		}
	}
	assert.EqualValues(t, saved.Load.Requests, requests)
	assert.Greater(t, metrics, 100, "the scraper samples every component during the run")

	// Components were dialling each other through proxies: their configs are routed.
	b, err := os.ReadFile(filepath.Join(dir, "system", "config", "gateway-1.json"))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"routed": true`)
}

// scheduleOf is the load's request schedule and the fault timeline of a run's history,
// planned times relative to the first request so two runs compare.
type scheduleEntry struct {
	Seq     uint64
	Journey string
	Client  int
	Key     string
	Planned time.Duration
}

func readRun(t *testing.T, dir string) (sched []scheduleEntry, faultEvents []string, reqs []loadgen.Result, injected, healed time.Duration) {
	t.Helper()
	r, err := history.Open(filepath.Join(dir, harness.HistoryFile))
	require.NoError(t, err)
	defer r.Close()
	for ev, err := range r.Events() {
		require.NoError(t, err)
		if q, ok := ev.AsRequest(); ok {
			reqs = append(reqs, q)
			sched = append(sched, scheduleEntry{Seq: q.Seq, Journey: q.Journey, Client: q.Client, Key: q.Key, Planned: q.Planned})
		}
		if f, ok := ev.AsFault(); ok {
			faultEvents = append(faultEvents, strings.Join([]string{string(f.Action), f.Name, f.Type, f.Target, f.Params["latency"]}, " "))
			switch f.Action {
			case history.FaultInject:
				injected = ev.T
			case history.FaultHeal:
				healed = ev.T
			}
		}
	}
	slices.SortFunc(sched, func(a, b scheduleEntry) int { return int(a.Seq) - int(b.Seq) })
	if len(sched) > 0 {
		base := sched[0].Planned
		for i := range sched {
			sched[i].Planned -= base
		}
	}
	return sched, faultEvents, reqs, injected, healed
}

func p99(lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[min(len(lat)-1, len(lat)*99/100)]
}

// TestLatencyFault runs one scenario with a 300 ms latency on gateway->product twice with
// the same seed: once as is, once with a prober that bypasses the proxies, so the fault
// seems to do nothing.
func TestLatencyFault(t *testing.T) {
	landed, landedDir := runScenario(t, loadTestdata(t, "latency.yaml"))
	bypass := faults.WithProber(func(ctx context.Context, l faults.Link, _ string, spec faults.ProbeSpec) faults.Probe {
		return faults.TCPProbe(ctx, l.Upstream, spec)
	})
	missed, missedDir := runScenario(t, loadTestdata(t, "latency.yaml"), harness.WithLinkOptions(bypass))

	t.Run("landed and p99 rises", func(t *testing.T) {
		assert.Equal(t, result.Passed, landed.Verdict, "reason: %s", landed.Reason)
		require.Len(t, landed.Faults, 1)
		f := landed.Faults[0]
		require.NotNil(t, f.Effect)
		assert.True(t, f.Effect.Landed, f.Effect.Detail)
		assert.InDelta(t, 300, f.Effect.Measured, 60, "added latency in ms: %s", f.Effect.Detail)
		assert.Equal(t, []string{"gateway", "product"}, f.Targets)
		assert.Greater(t, f.Healed, f.Injected)

		_, _, reqs, injected, healed := readRun(t, landedDir)
		require.NotZero(t, injected)
		require.NotZero(t, healed)
		var before, during []time.Duration
		for _, q := range reqs {
			if q.Journey != reference.JourneyBrowse || !q.OK {
				continue
			}
			switch {
			case q.End() < injected:
				before = append(before, q.Latency)
			case q.Start > injected+100*time.Millisecond && q.End() < healed:
				during = append(during, q.Latency)
			}
		}
		require.NotEmpty(t, before)
		require.NotEmpty(t, during)
		assert.Greater(t, p99(during), p99(before)+200*time.Millisecond, "browse p99 before %s, during %s", p99(before), p99(during))
	})

	t.Run("ineffective fault is invalid", func(t *testing.T) {
		assert.Equal(t, result.Invalid, missed.Verdict)
		assert.Contains(t, missed.Reason, "slow-product")
		assert.Contains(t, missed.Reason, "did not land")
		assert.Equal(t, result.Invalid.ExitCode(), 2)
	})

	t.Run("same seed same schedules", func(t *testing.T) {
		a, fa, _, _, _ := readRun(t, landedDir)
		b, fb, _, _, _ := readRun(t, missedDir)
		require.NotEmpty(t, a)
		assert.Equal(t, []string{"inject slow-product latency gateway->product 300ms", "heal slow-product latency gateway->product "}, fa)
		assert.Equal(t, fa, fb)
		n := min(len(a), len(b))
		assert.InDelta(t, len(a), len(b), 2, "both runs plan the same requests")
		for i := range n {
			assert.Equal(t, a[i].Journey, b[i].Journey, "request %d", a[i].Seq)
			assert.Equal(t, a[i].Client, b[i].Client, "request %d", a[i].Seq)
			assert.Equal(t, a[i].Key, b[i].Key, "request %d", a[i].Seq)
			assert.InDelta(t, a[i].Planned, b[i].Planned, float64(time.Millisecond), "request %d", a[i].Seq)
		}
	})
}

func TestRefusesInvalidScenario(t *testing.T) {
	sc, err := scenarios.Load(filepath.Join("testdata", "malformed.yaml"))
	require.Error(t, err)
	require.NotNil(t, sc)
	dir := filepath.Join(t.TempDir(), "run")
	res, err := harness.Run(t.Context(), sc, harness.WithSystemFor(systems.For), harness.WithDir(dir))
	var verr *harness.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.GreaterOrEqual(t, len(verr.Errs), 5)
	for _, e := range verr.Errs {
		assert.Regexp(t, `malformed\.yaml:\d+:\d+: `, e.Error())
	}
	assert.Equal(t, result.Error, res.Verdict)
	assert.Equal(t, 3, res.Verdict.ExitCode())
	_, statErr := os.Stat(dir)
	assert.True(t, os.IsNotExist(statErr), "nothing is started or written for a refused scenario")
}

// TestCrashLoopLandsOverItsWindow: a crash loop of five rounds is measured when its
// window ends, not right after its first kill, and every output says the same: the
// result's effect, the fault_landed check and the verdict.
func TestCrashLoopLandsOverItsWindow(t *testing.T) {
	res, _ := runScenario(t, loadTestdata(t, "crash-loop.yaml"))
	require.Len(t, res.Faults, 1)
	e := res.Faults[0].Effect
	require.NotNil(t, e)
	assert.True(t, e.Landed, e.Detail)
	assert.Equal(t, 5.0, e.Configured, e.Detail)
	assert.Equal(t, 5.0, e.Measured, e.Detail)
	var landed *result.Check
	for i, c := range res.Checks {
		if c.Kind == "fault_landed" {
			landed = &res.Checks[i]
		}
	}
	require.NotNil(t, landed)
	assert.True(t, landed.Passed, landed.Message)
	assert.Contains(t, landed.Message, "measured 5 kills against 5 kills configured")
	assert.NotEqual(t, result.Invalid, res.Verdict, "reason: %s", res.Reason)
}

// TestFaultNoRequestCrossedIsInvalid: a latency on gateway->order, or a pause of
// order-1, under a browse-only load lands (the harness's probes, or /proc, see it) but no
// request of the load crosses it, so the run cannot show anything about the system and is
// invalid, by the proxies' own count.
func TestFaultNoRequestCrossedIsInvalid(t *testing.T) {
	for _, tt := range []struct{ file, reason string }{
		{"uncrossed-latency.yaml", "no request crossed gateway->order-1 during slow-order"},
		{"uncrossed-pause.yaml", "no request crossed gateway->order-1 during frozen-order"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			res, _ := runScenario(t, loadTestdata(t, tt.file))
			require.Len(t, res.Faults, 1)
			f := res.Faults[0]
			require.NotNil(t, f.Effect)
			assert.True(t, f.Effect.Landed, "the fault is in place: %s", f.Effect.Detail)
			require.NotNil(t, f.Traffic, "the proxies counted the link's traffic")
			assert.Zero(t, f.Traffic.Connections, "%+v", f.Traffic)
			assert.Equal(t, result.Invalid, res.Verdict, "reason: %s", res.Reason)
			assert.Contains(t, res.Reason, tt.reason)
		})
	}
}
