package checks_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

func TestDecide(t *testing.T) {
	pass := func(name, kind, phase string) result.Check {
		return result.Check{Name: name, Kind: kind, Phase: phase, Passed: true, Message: name + " held"}
	}
	fail := func(name, kind, phase, msg string) result.Check {
		return result.Check{Name: name, Kind: kind, Phase: phase, Message: msg}
	}
	landed := pass("during:slow/fault_landed", "fault_landed", "during:slow")
	steady := pass("steady_state:before/error_rate", "error_rate", "steady_state:before")
	slowP90 := fail("browse-stays-fast", "latency", "during:slow", "browse p90 latency 1502 ms > 300 ms during slow")
	expect := &scenarios.ExpectFailure{Check: "browse-stays-fast", Reason: "(?i)p90", Explanation: "no breaker"}
	load := result.Load{PlannedRate: 50, AchievedRate: 49}
	notLanded := slowFault
	notLanded.Effect = &result.Effect{Configured: 0.3, Measured: 0, Landed: false, Detail: "no added latency on gateway->product"}

	tests := []struct {
		name     string
		expect   *scenarios.ExpectFailure
		checks   []result.Check
		faults   []result.Fault
		load     result.Load
		want     result.Verdict
		reason   string
		observed bool
	}{
		{
			name: "every check passed", checks: []result.Check{steady, landed}, faults: []result.Fault{slowFault}, load: load,
			want: result.Passed, reason: "all 2 checks passed",
		},
		{
			name: "a check failed", checks: []result.Check{steady, landed, slowP90}, load: load,
			want: result.Failed, reason: "browse-stays-fast failed: browse p90 latency 1502 ms > 300 ms during slow",
		},
		{
			name: "a skipped check is not a pass", load: load,
			checks: []result.Check{{Name: "after/latency_p99", Skipped: true, Message: "no successful requests"}},
			want:   result.Failed, reason: "after/latency_p99 could not be evaluated: no successful requests",
		},
		{
			name: "a fault whose effect did not land makes the run invalid", checks: []result.Check{steady, slowP90},
			faults: []result.Fault{notLanded}, load: load, expect: expect,
			want: result.Invalid, reason: "fault slow did not land: measured 0 against 0.3 configured (no added latency on gateway->product)",
		},
		{
			name: "a failed fault_landed check makes the run invalid", load: load,
			checks: []result.Check{steady, fail("during:slow/fault_landed", "fault_landed", "during:slow", "fault slow has no measured effect")},
			want:   result.Invalid, reason: "fault did not land (during:slow/fault_landed): fault slow has no measured effect",
		},
		{
			name: "load below its throughput check", load: load,
			checks: []result.Check{steady, fail("overall/throughput", "throughput", "overall", "throughput 50% of plan < 90%")},
			want:   result.Invalid, reason: "load below its throughput floor: throughput 50% of plan < 90%",
		},
		{
			name: "load below the default floor", checks: []result.Check{steady}, load: result.Load{PlannedRate: 50, AchievedRate: 30},
			want: result.Invalid, reason: "load below its throughput floor: achieved 30.0 req/s of 50.0 planned, under 90%",
		},
		{
			name: "steady state failed before the fault", load: load,
			checks: []result.Check{fail("steady_state:before/error_rate", "error_rate", "steady_state:before", "error rate 3% > 1%"), slowP90},
			want:   result.Invalid, reason: "steady state did not hold before the first fault: error rate 3% > 1%",
		},
		{
			name: "steady state failing after the heal is a failure, not invalid", load: load,
			checks: []result.Check{steady, fail("steady_state:after/error_rate", "error_rate", "steady_state:after", "error rate 3% > 1%")},
			want:   result.Failed, reason: "steady_state:after/error_rate failed: error rate 3% > 1%",
		},
		{
			name: "expected failure met", expect: expect, checks: []result.Check{steady, landed, slowP90}, load: load,
			want: result.Passed, observed: true,
			reason: "expected failure observed: browse-stays-fast: browse p90 latency 1502 ms > 300 ms during slow",
		},
		{
			name: "expected failure not met", expect: expect, load: load,
			checks: []result.Check{steady, landed, pass("browse-stays-fast", "latency", "during:slow")},
			want:   result.Failed, reason: "browse-stays-fast was expected to fail but passed: browse-stays-fast held",
		},
		{
			name: "expected check failed for another reason", expect: expect, load: load,
			checks: []result.Check{steady, landed, fail("browse-stays-fast", "latency", "during:slow", "no successful browse requests")},
			want:   result.Failed, reason: `browse-stays-fast failed, but not as expected: "no successful browse requests" does not match "(?i)p90"`,
		},
		{
			name: "expected failure met, but another check failed too", expect: expect, load: load,
			checks: []result.Check{steady, landed, slowP90, fail("after/error_rate", "error_rate", "after", "error rate 9% > 1%")},
			want:   result.Failed, observed: true,
			reason: "browse-stays-fast failed as expected, but after/error_rate failed: error rate 9% > 1%",
		},
		{
			name: "expected failure of a sub-result", load: load,
			expect: &scenarios.ExpectFailure{Check: "shop", Reason: "lost", Explanation: "async"},
			checks: []result.Check{steady, pass("shop/stock_matches", "consistency", "overall"),
				fail("shop/exactly_once", "consistency", "overall", "exactly-once violated 2 times: 2 acknowledged but lost")},
			want: result.Passed, observed: true,
			reason: "expected failure observed: shop/exactly_once: exactly-once violated 2 times: 2 acknowledged but lost",
		},
		{
			name: "expected check never evaluated", expect: expect, checks: []result.Check{steady}, load: load,
			want: result.Failed, reason: `expect_failure names check "browse-stays-fast", which was not evaluated`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := scenario(func(sc *scenarios.Scenario) { sc.ExpectFailure = tt.expect })
			got, reason, ef := checks.Decide(sc, tt.checks, tt.faults, tt.load)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.reason, reason)
			if tt.expect == nil {
				assert.Nil(t, ef)
				return
			}
			require.NotNil(t, ef)
			assert.Equal(t, tt.expect.Check, ef.Check)
			assert.Equal(t, tt.expect.Explanation, ef.Reason)
			assert.Equal(t, tt.observed, ef.Observed)
		})
	}
}

// Steady-state checks run in both windows; user names are kept (prefixed by the window
// for steady state); live checks are left to the harness, named the same way.
func TestPlanNamesAndLiveChecks(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) {
		sc.SteadyState = []scenarios.Check{check(&scenarios.ErrorRateCheck{Max: 0.01}), named("fast", &scenarios.LatencyCheck{Percentile: "p99", Max: scenarios.Duration(300 * ms)})}
		sc.Expect.During["slow"] = []scenarios.Check{check(&scenarios.HTTPProbeCheck{URL: "/healthz"})}
		sc.Expect.After = []scenarios.Check{check(&scenarios.CommandCheck{Run: []string{"true"}})}
		sc.Expect.During["ghost"] = []scenarios.Check{check(&scenarios.ErrorRateCheck{Max: 0.5})}
	})
	in := inputs(sc, slowFault)
	got := evaluate(t, sc, []history.Event{req(1500*ms, 10*ms), req(9*sec, 10*ms)}, in)
	assert.ElementsMatch(t, []string{
		"steady_state:before/error_rate", "steady_state:before/fast",
		"steady_state:after/error_rate", "steady_state:after/fast",
		"during:ghost/error_rate",
	}, keys(got))
	assert.True(t, got["steady_state:before/error_rate"].Passed)
	assert.Equal(t, "p99 latency 10 ms <= 300 ms in the steady state after the last heal", got["steady_state:after/fast"].Message)
	assert.Equal(t, "phase during:ghost was not part of this run", got["during:ghost/error_rate"].Message)

	live := checks.LiveChecks(sc, in.Phases)
	require.Len(t, live, 2)
	assert.Equal(t, "during:slow/http_probe/GET /healthz", live[0].Name)
	assert.Equal(t, 6*sec, live[0].At)
	assert.Equal(t, "after/command/true", live[1].Name)
	assert.Equal(t, 10*sec, live[1].At)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	c := live[0].Run(context.Background(), checks.LiveEnv{BaseURL: srv.URL, Token: "tok"})
	assert.Equal(t, result.Check{Name: "during:slow/http_probe/GET /healthz", Kind: "http_probe", Phase: "during:slow", Passed: true,
		Figure: 200, Op: "==", Threshold: 200, Unit: "status", Message: "GET /healthz answered 200"}, c)
}

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			http.Error(w, "dependency down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"products":[]}`))
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name   string
		spec   scenarios.HTTPProbeCheck
		passed bool
		figure float64
		msg    string
	}{
		{"status and body", scenarios.HTTPProbeCheck{URL: "/products", BodyContains: "products"}, true, 200, "GET /products answered 200"},
		{"wrong status", scenarios.HTTPProbeCheck{URL: "/down"}, false, 503, "GET /down answered 503, want 200"},
		{"expected status", scenarios.HTTPProbeCheck{URL: "/down", Status: 503}, true, 503, "GET /down answered 503"},
		{"body missing", scenarios.HTTPProbeCheck{URL: srv.URL + "/x", BodyContains: "orders"}, false, 200,
			`GET ` + srv.URL + `/x answered 200 but its body does not contain "orders"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := checks.Probe(context.Background(), &tt.spec, srv.URL, "")
			assert.Equal(t, tt.passed, c.Passed)
			assert.Equal(t, tt.figure, c.Figure)
			assert.Equal(t, tt.msg, c.Message)
		})
	}
	c := checks.Probe(context.Background(), &scenarios.HTTPProbeCheck{URL: "/products"}, "http://127.0.0.1:1", "")
	assert.False(t, c.Passed)
	assert.Equal(t, 0.0, c.Figure)
	assert.Contains(t, c.Message, "GET /products got no answer")
}

func TestRunCommand(t *testing.T) {
	tests := []struct {
		name   string
		spec   scenarios.CommandCheck
		passed bool
		figure float64
		msg    string
		detail string
	}{
		{"exit 0", scenarios.CommandCheck{Run: []string{"sh", "-c", "echo fine"}}, true, 0, `command "sh -c echo fine" exited 0, want 0`, "fine"},
		{"exit 3", scenarios.CommandCheck{Run: []string{"sh", "-c", "echo broken >&2; exit 3"}}, false, 3, `command "sh -c echo broken >&2; exit 3" exited 3, want 0`, "broken"},
		{"expected exit", scenarios.CommandCheck{Run: []string{"sh", "-c", "exit 3"}, ExitCode: 3}, true, 3, `command "sh -c exit 3" exited 3, want 3`, ""},
		{"timeout", scenarios.CommandCheck{Run: []string{"sleep", "5"}, Timeout: scenarios.Duration(100 * ms)}, false, -1, `command "sleep 5" did not finish within 100ms`, ""},
		{"not found", scenarios.CommandCheck{Run: []string{"./no-such-program"}}, false, -1, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := checks.RunCommand(context.Background(), &tt.spec, t.TempDir())
			assert.Equal(t, tt.passed, c.Passed, c.Message)
			assert.Equal(t, tt.figure, c.Figure)
			if tt.msg != "" {
				assert.Equal(t, tt.msg, c.Message)
			} else {
				assert.Contains(t, c.Message, "could not run")
			}
			assert.Equal(t, tt.detail, c.Detail)
		})
	}
}

// A check named "errors/browse" is its own check, not a sub-result of one named "errors":
// its failure must neither satisfy nor hide from an expect_failure naming "errors".
func TestDecideExpectFailureIgnoresLongerNamedCheck(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) {
		sc.Expect.Overall = []scenarios.Check{
			named("errors", &scenarios.ErrorRateCheck{Max: 0.01}),
			named("errors/browse", &scenarios.ErrorRateCheck{Max: 0.01, Journey: "browse"}),
		}
		sc.ExpectFailure = &scenarios.ExpectFailure{Check: "errors", Reason: "error rate", Explanation: "no retries"}
	})
	cks := []result.Check{
		{Name: "errors", Kind: "error_rate", Phase: "overall", Passed: true, Message: "error rate 0.5% <= 1%"},
		{Name: "errors/browse", Kind: "error_rate", Phase: "overall", Message: "error rate 7% > 1%"},
	}
	got, reason, ef := checks.Decide(sc, cks, nil, result.Load{PlannedRate: 10, AchievedRate: 10})
	want := result.Failed
	assert.Equal(t, want, got, reason)
	require.NotNil(t, ef)
	assert.False(t, ef.Observed)
	assert.Equal(t, "errors was expected to fail but passed: error rate 0.5% <= 1%", reason)
}

// TestDecideNamesTheExpectedFailuresResults: the results that belong to the check expected
// to fail — its sub-results and steady-state windows, not a longer-named check's — are
// named on the ExpectedFailure, for every report to mark the same ones; an invalid run
// names them too.
func TestDecideNamesTheExpectedFailuresResults(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) {
		sc.Expect.Overall = []scenarios.Check{
			named("inventory", &scenarios.ErrorRateCheck{Max: 0.01}),
			named("inventory/browse", &scenarios.ErrorRateCheck{Max: 0.01, Journey: "browse"}),
		}
		sc.ExpectFailure = &scenarios.ExpectFailure{Check: "inventory", Reason: "lost", Explanation: "no outbox"}
	})
	cks := []result.Check{
		{Name: "inventory/exactly_once", Kind: "consistency", Phase: "after", Passed: true, Message: "every order applied once"},
		{Name: "inventory/settled", Kind: "consistency", Phase: "after", Message: "95 inventory events lost"},
		{Name: "steady_state:after/inventory", Kind: "error_rate", Phase: "steady_state:after", Passed: true, Message: "ok"},
		{Name: "inventory/browse", Kind: "error_rate", Phase: "overall", Passed: true, Message: "ok"},
	}
	want := []string{"inventory/exactly_once", "inventory/settled", "steady_state:after/inventory"}
	got, reason, ef := checks.Decide(sc, cks, nil, result.Load{PlannedRate: 10, AchievedRate: 10})
	assert.Equal(t, result.Passed, got, reason)
	require.NotNil(t, ef)
	assert.Equal(t, want, ef.Results)

	_, _, ef = checks.Decide(sc, cks, nil, result.Load{PlannedRate: 10, AchievedRate: 1})
	require.NotNil(t, ef, "an invalid run")
	assert.Equal(t, want, ef.Results)
}
