// Package observe samples every component's Prometheus /metrics into the run's history, so
// breaker state, retries, outbox backlog and consumer lag are time series that checks and
// charts read, not one final value. Samples are streamed to a sink as they are taken; the
// scraper keeps nothing between ticks.
package observe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Target is one component's metrics endpoint.
type Target struct {
	Component string // instance name, e.g. "order-2"
	URL       string // full URL of /metrics
}

// Sample is one scraped value, stamped with its offset from the scraper's start.
type Sample struct {
	T         time.Duration     `json:"t"`
	Component string            `json:"component"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	Value     float64           `json:"value"`
}

// UpMetric is the synthetic sample emitted per target and tick: 1 when the scrape
// succeeded, 0 when the component did not answer (crashed, paused, partitioned).
const UpMetric = "up"

// DefaultPrefixes keeps the project's own metrics plus the two process figures soak runs read.
var DefaultPrefixes = []string{"faultline_", "process_resident_memory_bytes", "go_goroutines"}

// Scraper samples a changing set of targets at a fixed interval.
type Scraper struct {
	targets  func() []Target
	interval time.Duration
	timeout  time.Duration
	prefixes []string
	client   *http.Client
	start    time.Time
}

// Option configures a Scraper; it returns an error for a value that cannot work.
type Option func(*Scraper) error

// WithInterval sets the sampling interval (50 ms to 10 s).
func WithInterval(d time.Duration) Option {
	return func(s *Scraper) error {
		if d < 50*time.Millisecond || d > 10*time.Second {
			return fmt.Errorf("interval %v is outside 50ms..10s", d)
		}
		s.interval = d
		return nil
	}
}

// WithPrefixes keeps only metrics whose name starts with one of prefixes.
func WithPrefixes(prefixes ...string) Option {
	return func(s *Scraper) error {
		if len(prefixes) == 0 {
			return errors.New("prefixes are empty")
		}
		s.prefixes = prefixes
		return nil
	}
}

// WithStart sets the instant sample offsets are measured from (the run's start).
func WithStart(t time.Time) Option {
	return func(s *Scraper) error { s.start = t; return nil }
}

// WithClient replaces the HTTP client (its Timeout is ignored; each scrape is bounded by the interval).
func WithClient(c *http.Client) Option {
	return func(s *Scraper) error {
		if c == nil {
			return errors.New("client is nil")
		}
		s.client = c
		return nil
	}
}

// NewScraper builds a scraper over targets, which is called at every tick so that
// restarted or added components are followed.
func NewScraper(targets func() []Target, opts ...Option) (*Scraper, error) {
	if targets == nil {
		return nil, errors.New("create scraper: targets is nil")
	}
	s := &Scraper{
		targets:  targets,
		interval: 200 * time.Millisecond,
		prefixes: DefaultPrefixes,
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}},
		start:    time.Now(),
	}
	var errs []error
	for _, o := range opts {
		if err := o(s); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("create scraper: %w", errors.Join(errs...))
	}
	// A paused component must not stall the next tick: a scrape gets less than one interval.
	s.timeout = s.interval * 9 / 10
	return s, nil
}

// Run samples every target each interval until ctx ends, calling sink from one goroutine
// at a time. It returns nil when ctx ends.
func (s *Scraper) Run(ctx context.Context, sink func(Sample)) error {
	var mu sync.Mutex
	emit := func(x Sample) { mu.Lock(); defer mu.Unlock(); sink(x) }
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		s.tick(ctx, emit)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (s *Scraper) tick(ctx context.Context, emit func(Sample)) {
	var wg sync.WaitGroup
	for _, tg := range s.targets() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, s.timeout)
			defer cancel()
			t := time.Since(s.start)
			samples, err := Scrape(cctx, s.client, tg, s.prefixes)
			up := 1.0
			if err != nil {
				up = 0
			}
			emit(Sample{T: t, Component: tg.Component, Name: UpMetric, Value: up})
			for _, x := range samples {
				x.T = t
				emit(x)
			}
		}()
	}
	wg.Wait()
}

// Scrape reads one target once and returns the samples whose names match prefixes
// (histogram buckets are left out: _sum and _count are enough for rates and means).
func Scrape(ctx context.Context, client *http.Client, tg Target, prefixes []string) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", tg.Component, err)
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", tg.Component, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", tg.Component, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: parse metrics: %w", tg.Component, err)
	}
	names := make([]string, 0, len(fams))
	for name := range fams {
		if keep(name, prefixes) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []Sample
	for _, name := range names {
		out = appendFamily(out, tg.Component, fams[name])
	}
	return out, nil
}

func keep(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func appendFamily(out []Sample, component string, f *dto.MetricFamily) []Sample {
	name := f.GetName()
	for _, m := range f.GetMetric() {
		labels := make(map[string]string, len(m.GetLabel()))
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		add := func(n string, v float64) {
			out = append(out, Sample{Component: component, Name: n, Labels: labels, Value: v})
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			add(name, m.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			add(name, m.GetGauge().GetValue())
		case dto.MetricType_HISTOGRAM:
			add(name+"_sum", m.GetHistogram().GetSampleSum())
			add(name+"_count", float64(m.GetHistogram().GetSampleCount()))
		case dto.MetricType_SUMMARY:
			add(name+"_sum", m.GetSummary().GetSampleSum())
			add(name+"_count", float64(m.GetSummary().GetSampleCount()))
		default:
			add(name, m.GetUntyped().GetValue())
		}
	}
	return out
}
