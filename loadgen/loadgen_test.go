package loadgen_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/reference-services/config"
)

func mustRate(t testing.TB, s string) loadgen.Rate {
	t.Helper()
	r, err := loadgen.RateOf(s)
	require.NoError(t, err)
	return r
}

func token(client int) string { return "tok-" + strconv.Itoa(client) }

func refSpec(t testing.TB, seed int64, rate string, d time.Duration) loadgen.Spec {
	return loadgen.Spec{
		Rate: mustRate(t, rate), Duration: d, Seed: seed, Clients: 4,
		Mix: reference.Mix(), Journeys: reference.Journeys(token),
		Timeout: 5 * time.Second,
	}
}

// collect runs spec against target and returns the results in sequence order.
func collect(t *testing.T, spec loadgen.Spec, target string) ([]loadgen.Result, loadgen.Summary) {
	t.Helper()
	var mu sync.Mutex
	var got []loadgen.Result
	sum, err := loadgen.Run(context.Background(), spec, target, func(r loadgen.Result) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
	})
	require.NoError(t, err)
	slices.SortFunc(got, func(a, b loadgen.Result) int { return int(a.Seq) - int(b.Seq) })
	return got, sum
}

func TestSpecValidate(t *testing.T) {
	good := func() loadgen.Spec { return refSpec(t, 1, "10/s", time.Second) }
	tests := []struct {
		name   string
		mutate func(*loadgen.Spec)
		want   []string // substrings of the expected errors, in order
	}{
		{name: "valid", mutate: func(*loadgen.Spec) {}},
		{name: "valid ramp", mutate: func(s *loadgen.Spec) {
			s.Rate, s.Duration = loadgen.Rate{}, 0
			s.Ramp = []loadgen.Step{{Rate: mustRate(t, "10/s"), Duration: time.Second}}
		}},
		{name: "no rate", mutate: func(s *loadgen.Spec) { s.Rate = loadgen.Rate{} }, want: []string{"rate is zero"}},
		{name: "no duration", mutate: func(s *loadgen.Spec) { s.Duration = 0 }, want: []string{"duration is zero"}},
		{name: "negatives", mutate: func(s *loadgen.Spec) {
			s.MaxWorkers, s.Timeout, s.Clients, s.MaxBody = -1, -time.Second, -2, -3
		}, want: []string{"max workers -1", "timeout -1s", "clients -2", "max body -3"}},
		{name: "bad step", mutate: func(s *loadgen.Spec) {
			s.Ramp = []loadgen.Step{{Rate: loadgen.Rate{Freq: -1, Per: time.Second}, Duration: 0}}
		}, want: []string{"ramp step 1 rate: frequency -1", "ramp step 1: duration 0s"}},
		{name: "unknown shape", mutate: func(s *loadgen.Spec) {
			s.Duration = 0
			s.Ramp = []loadgen.Step{{Rate: mustRate(t, "10/s"), Duration: time.Second, Shape: "curvy"}}
		}, want: []string{`ramp step 1: shape "curvy" is neither "step" nor "linear"`}},
		{name: "bad step mix", mutate: func(s *loadgen.Spec) {
			s.Ramp = []loadgen.Step{{Rate: mustRate(t, "10/s"), Duration: time.Second, Mix: map[string]int{"nope": 1, "browse": -1}}}
		}, want: []string{`ramp step 1 mix weight of "browse" is negative`, `ramp step 1 mix names journey "nope"`}},
		{name: "step mix of no weight", mutate: func(s *loadgen.Spec) {
			s.Ramp = []loadgen.Step{{Rate: mustRate(t, "10/s"), Duration: time.Second, Mix: map[string]int{"browse": 0}}}
		}, want: []string{"ramp step 1 mix has no positive weight"}},
		{name: "duration shorter than ramp", mutate: func(s *loadgen.Spec) {
			s.Ramp = []loadgen.Step{{Rate: mustRate(t, "10/s"), Duration: 2 * time.Second}}
		}, want: []string{"shorter than the ramp"}},
		{name: "unknown journey in mix", mutate: func(s *loadgen.Spec) { s.Mix = map[string]int{"checkout": 1} },
			want: []string{`journey "checkout", which is not declared`}},
		{name: "no weight", mutate: func(s *loadgen.Spec) { s.Mix = map[string]int{"browse": 0} },
			want: []string{"no positive weight"}},
		{name: "negative weight", mutate: func(s *loadgen.Spec) { s.Mix = map[string]int{"browse": -1} },
			want: []string{"weight of \"browse\" is negative", "no positive weight"}},
		{name: "duplicate journey", mutate: func(s *loadgen.Spec) { s.Journeys = append(s.Journeys, s.Journeys[0]) },
			want: []string{`journey "browse" is declared twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.mutate(&s)
			errs := s.Validate()
			require.Len(t, errs, len(tt.want), "errors: %v", errs)
			for i, want := range tt.want {
				assert.Contains(t, errs[i].Error(), want)
			}
		})
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	_, err := loadgen.Run(context.Background(), loadgen.Spec{}, "http://127.0.0.1:1", nil)
	assert.ErrorContains(t, err, "validate load spec")
	_, err = loadgen.Run(context.Background(), refSpec(t, 1, "10/s", time.Second), "127.0.0.1:80", nil)
	assert.ErrorContains(t, err, "parse target")
}

func TestKeyFor(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for seq := uint64(1); seq <= 10000; seq++ {
		k := loadgen.KeyFor(42, seq)
		require.Regexp(t, uuid, k)
		require.False(t, seen[k], "key %s repeats at seq %d", k, seq)
		seen[k] = true
	}
	assert.Equal(t, loadgen.KeyFor(42, 7), loadgen.KeyFor(42, 7))
	assert.NotEqual(t, loadgen.KeyFor(42, 7), loadgen.KeyFor(43, 7))
}

func TestPreviewIsAPureFunctionOfTheSeed(t *testing.T) {
	spec := refSpec(t, 7, "100/s", 10*time.Second)
	a, err := loadgen.Preview(spec, 500)
	require.NoError(t, err)
	b, err := loadgen.Preview(spec, 500)
	require.NoError(t, err)
	require.Len(t, a, 500)
	assert.Equal(t, a, b)
	spec.Seed = 8
	c, err := loadgen.Preview(spec, 500)
	require.NoError(t, err)
	assert.NotEqual(t, journeysOf(a), journeysOf(c))
	assert.NotEqual(t, a[0].Key, c[0].Key)
}

func journeysOf(ps []loadgen.Plan) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Journey
	}
	return out
}

func TestMixMatchesWeights(t *testing.T) {
	spec := refSpec(t, 99, "1000/s", 30*time.Second)
	plans, err := loadgen.Preview(spec, 20000)
	require.NoError(t, err)
	counts := map[string]int{}
	for _, p := range plans {
		counts[p.Journey]++
	}
	total := 0
	for _, w := range spec.Mix {
		total += w
	}
	for name, w := range spec.Mix {
		want := float64(w) / float64(total)
		got := float64(counts[name]) / float64(len(plans))
		assert.InDelta(t, want, got, 0.015, "share of %s", name)
	}
}

func TestRunMixAgainstServer(t *testing.T) {
	gw := newGateway()
	target := serve(t, gw)
	spec := refSpec(t, 5, "400/s", 1500*time.Millisecond)
	spec.Mix = map[string]int{reference.JourneyBrowse: 3, reference.JourneyPlaceOrder: 1}
	results, sum := collect(t, spec, target)
	require.Len(t, results, 600)
	counts := map[string]int{}
	for _, r := range results {
		counts[r.Journey]++
		assert.True(t, r.OK, "request %d (%s %s) answered %d %s", r.Seq, r.Method, r.Path, r.Status, r.Error)
	}
	assert.InDelta(t, 0.75, float64(counts[reference.JourneyBrowse])/600, 0.05)
	assert.InDelta(t, 0.25, float64(counts[reference.JourneyPlaceOrder])/600, 0.05)
	assert.Len(t, gw.requests(), 600, "the server saw every request")
	assert.Equal(t, uint64(600), sum.Issued)
	assert.Equal(t, uint64(counts[reference.JourneyBrowse]), sum.Journeys[reference.JourneyBrowse].Count)
	assert.True(t, sum.RateReached(0.05), "issued %d of %d due", sum.Issued, sum.Due)
	assert.Equal(t, "gw-1", results[0].ServedBy)
}

// scheduled is the part of a result the schedule decides.
type scheduled struct {
	Seq     uint64
	Journey string
	Client  int
	Key     string
	Planned time.Duration
	Attrs   map[string]string
	Ref     uint64
}

func scheduleOf(rs []loadgen.Result) []scheduled {
	out := make([]scheduled, len(rs))
	for i, r := range rs {
		out[i] = scheduled{r.Seq, r.Journey, r.Client, r.Key, r.Planned, r.Attrs, r.Ref}
	}
	return out
}

// placements is what a server saw of POSTs, keyed by the generator's sequence header.
func placements(rs []received) map[string]received {
	out := map[string]received{}
	for _, r := range rs {
		if r.Method == http.MethodPost {
			out[r.Seq] = r
		}
	}
	return out
}

func TestSameSeedSameSchedule(t *testing.T) {
	run := func(seed int64) ([]loadgen.Result, *gateway) {
		gw := newGateway()
		rs, _ := collect(t, refSpec(t, seed, "200/s", time.Second), serve(t, gw))
		return rs, gw
	}
	a, gwA := run(11)
	b, gwB := run(11)
	c, _ := run(12)
	require.Len(t, a, 200)
	require.Len(t, b, 200)
	assert.Equal(t, scheduleOf(a), scheduleOf(b), "same seed, same schedule")
	assert.NotEqual(t, scheduleOf(a), scheduleOf(c), "another seed, another schedule")
	// What went over the wire agrees too: every placement and retry, with its key, client
	// and body.
	pa, pb := placements(gwA.requests()), placements(gwB.requests())
	require.NotEmpty(t, pa)
	assert.Equal(t, pa, pb)
	// And the plan is what Preview promised.
	plans, err := loadgen.Preview(refSpec(t, 11, "200/s", time.Second), 200)
	require.NoError(t, err)
	for i, p := range plans {
		assert.Equal(t, scheduleOf(a)[i], scheduled{p.Seq, p.Journey, p.Client, p.Key, p.At, p.Attrs, p.Ref})
	}
}

func TestRetryOrderRepeatsAnEarlierPlacement(t *testing.T) {
	gw := newGateway()
	spec := refSpec(t, 3, "300/s", time.Second)
	spec.Mix = map[string]int{reference.JourneyPlaceOrder: 1, reference.JourneyRetryOrder: 1, reference.JourneyViewOrder: 1}
	results, _ := collect(t, spec, serve(t, gw))
	bySeq := map[uint64]loadgen.Result{}
	for _, r := range results {
		bySeq[r.Seq] = r
	}
	bodies := map[string]string{} // seq -> body as the server saw it
	for _, r := range gw.requests() {
		bodies[r.Seq] = r.Body
	}
	retries, views := 0, 0
	for _, r := range results {
		switch {
		case r.Journey == reference.JourneyRetryOrder && r.Performed == "":
			retries++
			require.NotZero(t, r.Ref)
			orig, ok := bySeq[r.Ref]
			require.True(t, ok, "retry %d refers to unknown request %d", r.Seq, r.Ref)
			assert.Less(t, orig.Seq, r.Seq)
			assert.Equal(t, orig.Key, r.Key, "retry %d reuses the key", r.Seq)
			assert.Equal(t, orig.Client, r.Client)
			assert.Equal(t, bodies[strconv.FormatUint(orig.Seq, 10)], bodies[strconv.FormatUint(r.Seq, 10)], "retry %d reuses the body", r.Seq)
		case r.Journey == reference.JourneyPlaceOrder:
			assert.True(t, r.Acknowledged(), "placement %d answered %d", r.Seq, r.Status)
			assert.Regexp(t, `^o-\d+$`, r.Created)
			assert.Equal(t, config.DefaultCatalog().ProductMerchant(productIndex(t, r.Attrs[reference.AttrProduct])), r.Attrs[reference.AttrMerchant])
			assert.Equal(t, "Bearer tok-"+strconv.Itoa(r.Client), authOf(gw, r.Seq))
		case r.Journey == reference.JourneyViewOrder && r.Performed == "":
			views++
			assert.Equal(t, http.StatusOK, r.Status, "view_order %s reads an acknowledged order", r.Path)
			assert.Regexp(t, `^/orders/o-\d+$`, r.Path)
		}
	}
	assert.Greater(t, retries, 50)
	assert.Greater(t, views, 50)
	// Per key: one order, whichever of the placement and its retries arrived first created
	// it (the load is open, so a retry may overtake its original) and the rest replayed it.
	byKey := map[string][]loadgen.Result{}
	for _, r := range results {
		if r.Method == http.MethodPost {
			byKey[r.Key] = append(byKey[r.Key], r)
		}
	}
	assert.Len(t, gw.orders, len(byKey))
	for key, rs := range byKey {
		fresh := 0
		for _, r := range rs {
			assert.Equal(t, rs[0].Created, r.Created, "key %s", key)
			if !r.Replayed {
				fresh++
			}
		}
		assert.Equal(t, 1, fresh, "key %s: requests that were not replays", key)
	}
}

func productIndex(t *testing.T, id string) int {
	n, err := strconv.Atoi(id[2:])
	require.NoError(t, err)
	return n - 1
}

func authOf(gw *gateway, seq uint64) string {
	for _, r := range gw.requests() {
		if r.Seq == strconv.FormatUint(seq, 10) {
			return r.Auth
		}
	}
	return ""
}

func TestBoundedWorkers(t *testing.T) {
	var inflight, peak, served atomic.Int64
	release := make(chan struct{})
	target := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		served.Add(1)
		select { // hang: the system under test has stopped answering
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) })
	spec := refSpec(t, 1, "200/s", 10*time.Second)
	spec.MaxWorkers, spec.Timeout = 3, time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		sum loadgen.Summary
		err error
	}
	var results atomic.Int64
	done := make(chan outcome, 1)
	go func() {
		sum, err := loadgen.Run(ctx, spec, target, func(r loadgen.Result) {
			results.Add(1)
			assert.Zero(t, r.Status)
			assert.NotContains(t, r.Error, "#fl", "the generator's marker does not leak into errors")
		})
		done <- outcome{sum, err}
	}()
	require.Eventually(t, func() bool { return served.Load() == 3 }, 30*time.Second, 5*time.Millisecond)
	// The plan calls for a request every 5 ms; give the generator plenty of chances to
	// overrun its bound.
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, int64(3), served.Load(), "requests sent to a hanging server")
	assert.Equal(t, int64(3), peak.Load(), "requests in flight")
	assert.Zero(t, results.Load(), "no request has completed")
	cancel()
	var out outcome
	require.Eventually(t, func() bool {
		select {
		case out = <-done:
			return true
		default:
			return false
		}
	}, 30*time.Second, 10*time.Millisecond, "cancel aborts the hanging requests instead of waiting out the timeout")
	require.NoError(t, out.err)
	assert.Equal(t, uint64(3), out.sum.Issued)
	assert.Greater(t, out.sum.Due, out.sum.Issued, "a hanging system holds the load back")
	assert.False(t, out.sum.RateReached(0.1))
	assert.Equal(t, map[string]uint64{"canceled": 3}, out.sum.Errors)
}

func TestTimeoutsAreRecorded(t *testing.T) {
	release := make(chan struct{})
	target := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) })
	spec := refSpec(t, 1, "20/s", 200*time.Millisecond)
	spec.Timeout = 100 * time.Millisecond
	results, sum := collect(t, spec, target)
	require.Len(t, results, 4)
	for _, r := range results {
		assert.Zero(t, r.Status)
		assert.True(t, r.Indeterminate())
		assert.False(t, r.OK)
		assert.Equal(t, "timeout", loadgen.ErrorClass(r.Error), "error %q", r.Error)
		assert.GreaterOrEqual(t, r.Latency, 100*time.Millisecond)
	}
	assert.Equal(t, map[string]uint64{"timeout": 4}, sum.Errors)
	assert.Equal(t, map[int]uint64{0: 4}, sum.Statuses)
}

func TestResultsStreamAndCancelStops(t *testing.T) {
	target := serve(t, newGateway())
	first := make(chan loadgen.Result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		sum loadgen.Summary
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		sum, err := loadgen.Run(ctx, refSpec(t, 1, "50/s", time.Minute), target, func(r loadgen.Result) {
			select {
			case first <- r:
			default:
			}
		})
		done <- outcome{sum, err}
	}()
	var got loadgen.Result
	require.Eventually(t, func() bool {
		select {
		case got = <-first:
			return true
		default:
			return false
		}
	}, 30*time.Second, 10*time.Millisecond, "the sink sees results while the load runs")
	select {
	case <-done:
		t.Fatal("Run returned before its minute was up or the context ended")
	default:
	}
	assert.Equal(t, uint64(1), got.Seq)
	cancel()
	var out outcome
	require.Eventually(t, func() bool {
		select {
		case out = <-done:
			return true
		default:
			return false
		}
	}, 30*time.Second, 10*time.Millisecond, "cancel stops the load")
	require.NoError(t, out.err)
	assert.True(t, out.sum.Cancelled)
	assert.Equal(t, uint64(3000), out.sum.Planned)
	assert.Less(t, out.sum.Due, out.sum.Planned)
	assert.Positive(t, out.sum.Issued)
}

func TestRampReachesTargetRate(t *testing.T) {
	target := serve(t, newGateway())
	spec := refSpec(t, 2, "1/s", 0)
	spec.Rate = loadgen.Rate{}
	spec.Ramp = []loadgen.Step{
		{Rate: mustRate(t, "200/s"), Duration: time.Second, Shape: loadgen.ShapeLinear},
		{Rate: mustRate(t, "200/s"), Duration: time.Second},
	}
	_, sum := collect(t, spec, target)
	assert.Equal(t, uint64(300), sum.Planned)
	require.Len(t, sum.Windows, 2)
	assert.Equal(t, uint64(100), sum.Windows[0].Planned)
	assert.Equal(t, uint64(200), sum.Windows[1].Planned)
	assert.True(t, sum.RateReached(0.05), "issued %d of %d", sum.Issued, sum.Due)
	// Generous: the point is that the load climbed to the target, not that a busy
	// machine kept exact time.
	assert.GreaterOrEqual(t, sum.Windows[1].Issued, uint64(150), "requests started in the hold second")
	assert.Greater(t, sum.Windows[1].Issued, sum.Windows[0].Issued)
	assert.InDelta(t, 150, sum.PlannedRate, 1e-9)
}

func TestEpochShiftsOffsets(t *testing.T) {
	target := serve(t, newGateway())
	epoch := time.Now().Add(-time.Hour)
	var first loadgen.Result
	var once sync.Once
	_, err := loadgen.Run(context.Background(), refSpec(t, 1, "20/s", 200*time.Millisecond), target, func(r loadgen.Result) {
		once.Do(func() { first = r })
	}, loadgen.WithEpoch(epoch))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, first.Planned, time.Hour)
	assert.GreaterOrEqual(t, first.Start, first.Planned)
}

// TestStepMixChangesTheJourneys: a ramp step's own mix weighs the journeys from its start
// on, the spec's mix before it, and the schedule stays a pure function of the spec.
func TestStepMixChangesTheJourneys(t *testing.T) {
	spec := refSpec(t, 7, "20/s", 3*time.Second)
	spec.Mix = map[string]int{"browse": 1}
	spec.Ramp = []loadgen.Step{
		{Rate: mustRate(t, "20/s"), Duration: time.Second},
		{Rate: mustRate(t, "20/s"), Duration: time.Second, Mix: map[string]int{"browse": 1, "place_order": 3}},
		{Rate: mustRate(t, "20/s"), Duration: time.Second, Mix: map[string]int{"view_order": 1}},
	}
	plans, err := loadgen.Preview(spec, 100)
	require.NoError(t, err)
	require.Len(t, plans, 60)
	count := map[string]map[string]int{}
	for _, p := range plans {
		sec := strconv.Itoa(int(p.At / time.Second))
		if count[sec] == nil {
			count[sec] = map[string]int{}
		}
		count[sec][p.Journey]++
	}
	assert.Equal(t, map[string]int{"browse": 20}, count["0"], "the spec's mix first")
	assert.Equal(t, 20, count["1"]["browse"]+count["1"]["place_order"], "the second step's journeys only")
	assert.Greater(t, count["1"]["place_order"], count["1"]["browse"], "weighed 3 to 1")
	assert.Equal(t, map[string]int{"view_order": 20}, count["2"], "the third step's mix")
	again, err := loadgen.Preview(spec, 100)
	require.NoError(t, err)
	assert.Equal(t, plans, again)
}

// A load stopped by its context (the console's finish, a user's ^C) cuts the requests then
// in flight. Their outcome is unknown: they stay in the record, marked cut, and are judged
// neither a success nor a failure of the system.
func TestStopMarksCutRequestsNotFailed(t *testing.T) {
	var hang atomic.Bool
	release := make(chan struct{})
	target := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() { close(release) }) // after serve's: the handlers return before the server closes
	spec := refSpec(t, 1, "50/s", time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []loadgen.Result
	done := make(chan loadgen.Summary, 1)
	go func() {
		sum, err := loadgen.Run(ctx, spec, target, func(r loadgen.Result) {
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
		})
		assert.NoError(t, err)
		done <- sum
	}()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 5 }, 30*time.Second, 5*time.Millisecond)
	hang.Store(true)
	time.Sleep(300 * time.Millisecond) // ~15 requests now hang
	cancel()
	var sum loadgen.Summary
	select {
	case sum = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the stop did not end the load")
	}
	mu.Lock()
	defer mu.Unlock()
	var cut uint64
	for _, r := range got {
		if r.Cut {
			cut++
			assert.Zero(t, r.Status, "a cut request had no answer")
		} else {
			assert.True(t, r.OK, "request %d: %s", r.Seq, r.Error)
		}
		assert.False(t, r.Failed(), "request %d is no failure of the system", r.Seq)
	}
	assert.Positive(t, cut, "requests hanging at the stop are marked cut")
	assert.Equal(t, cut, sum.Cut, "the summary counts the cut requests")
	assert.Equal(t, uint64(len(got)), sum.Issued, "cut requests stay in the record")
}
