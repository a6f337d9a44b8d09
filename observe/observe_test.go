package observe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newMetricsServer(t *testing.T) (*httptest.Server, prometheus.Gauge) {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "faultline_breaker_state", ConstLabels: prometheus.Labels{"dependency": "product"}})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "faultline_http_request_duration_seconds"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "unrelated_total"})
	reg.MustRegister(g, h, other)
	h.Observe(0.25)
	h.Observe(0.75)
	other.Inc()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv, g
}

func TestScrapeFiltersAndFlattens(t *testing.T) {
	srv, g := newMetricsServer(t)
	g.Set(2)
	got, err := Scrape(context.Background(), http.DefaultClient, Target{Component: "gateway-1", URL: srv.URL}, DefaultPrefixes)
	require.NoError(t, err)
	byName := map[string]Sample{}
	for _, s := range got {
		byName[s.Name] = s
	}
	want := map[string]float64{
		"faultline_breaker_state":                       2,
		"faultline_http_request_duration_seconds_sum":   1,
		"faultline_http_request_duration_seconds_count": 2,
	}
	assert.Len(t, byName, len(want), "only faultline_ metrics are kept, buckets dropped: %v", byName)
	for name, v := range want {
		assert.InDelta(t, v, byName[name].Value, 1e-9, name)
		assert.Equal(t, "gateway-1", byName[name].Component)
	}
	assert.Equal(t, "product", byName["faultline_breaker_state"].Labels["dependency"])
}

// TestRunFollowsChangesAndDownTargets runs the scraper against one live target whose gauge
// changes, one that refuses connections and one that hangs (a paused process).
func TestRunFollowsChangesAndDownTargets(t *testing.T) {
	live, g := newMetricsServer(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) })

	targets := []Target{{"live", live.URL}, {"dead", deadURL}, {"hung", hung.URL}}
	s, err := NewScraper(func() []Target { return targets }, WithInterval(100*time.Millisecond))
	require.NoError(t, err)

	var mu sync.Mutex
	up := map[string][]float64{}
	var states []float64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- s.Run(ctx, func(x Sample) {
			mu.Lock()
			defer mu.Unlock()
			switch x.Name {
			case UpMetric:
				up[x.Component] = append(up[x.Component], x.Value)
			case "faultline_breaker_state":
				states = append(states, x.Value)
			}
		})
	}()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(states) >= 2 }, 5*time.Second, 20*time.Millisecond)
	g.Set(2)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(states) > 0 && states[len(states)-1] == 2
	}, 5*time.Second, 20*time.Millisecond, "a changed gauge shows in later samples")
	cancel()
	require.NoError(t, <-done)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 0.0, states[0], "the first sample saw the gauge before it changed")
	for _, c := range []string{"dead", "hung"} {
		require.NotEmpty(t, up[c], c)
		for _, v := range up[c] {
			assert.Equal(t, 0.0, v, "%s must be reported down", c)
		}
	}
	for _, v := range up["live"] {
		assert.Equal(t, 1.0, v)
	}
	// The hung target must not stall ticks: every target is sampled at the same count, give or take one.
	assert.InDelta(t, len(up["live"]), len(up["hung"]), 1)
}

func TestNewScraperRejectsBadOptions(t *testing.T) {
	_, err := NewScraper(func() []Target { return nil }, WithInterval(time.Millisecond), WithPrefixes(), WithClient(nil))
	require.Error(t, err)
	for _, want := range []string{"interval 1ms is outside", "prefixes are empty", "client is nil"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = NewScraper(nil)
	assert.ErrorContains(t, err, "targets is nil")
}
