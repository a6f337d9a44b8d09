// Package soak runs the reference system under a constant load for a long time while
// faults are injected and healed one after the other, and judges every process's memory
// and goroutines for leaks. It starts the system through the harness's pipeline
// (harness.StartSystem) and drives the load and the faults itself.
package soak

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/observe"
	"github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/system"
)

// Soak defaults.
const (
	// DefaultSoakRate is gentle on purpose: a soak looks for leaks, which show at any rate,
	// not for capacity; a rate the machine sustains keeps the figures about the system.
	DefaultSoakRate = 40
	// DefaultMaxRSSGrowth is issue 6's bound: no process's memory grows more than 10 %
	// between the end of the warm-up and the end of the soak.
	DefaultMaxRSSGrowth = 0.10
	// SoakFile is the report a soak writes into its directory, samples included.
	SoakFile = "soak.json"
	// cleanupTimeout bounds healing on the way out, whatever ended the soak.
	cleanupTimeout = 30 * time.Second
	// soakSettle is how long the system gets after a heal before a measurement window.
	soakSettle = 5 * time.Second
	// soakGap separates two faults, so that each one's recovery is its own.
	soakGap = time.Second
	// maxSoakFault caps how long one fault is held during a soak.
	maxSoakFault = 5 * time.Second
)

// SoakSpec describes a soak: the reference system under a constant load for Duration while
// faults are injected and healed one after the other, with every process's memory and
// goroutines sampled throughout.
//
// The timeline has four parts. Warm-up: load and faults, so that every one-time
// allocation (pools, caches, reconnect paths) is made. Start window (Window long, after
// the system has settled): load only; its figures are the start. Cycling: load and faults.
// End window (the last Window of the soak, after settling): load only; its figures are
// the end. Comparing two windows with the same load and no fault is what makes growth mean
// a leak rather than a busier moment.
type SoakSpec struct {
	Duration time.Duration
	// WarmUp defaults to a fifth of Duration.
	WarmUp time.Duration
	// Window defaults to a tenth of Duration, between 10 s and 60 s.
	Window time.Duration
	// Rate is the constant load in requests per second (default DefaultSoakRate).
	Rate int
	// Interval is the sampling interval (default 1 s).
	Interval time.Duration
	// MaxRSSGrowth is the largest allowed growth as a fraction (default DefaultMaxRSSGrowth).
	MaxRSSGrowth float64
	// DesignFile is the design the system runs; empty means the default design.
	DesignFile string
	// Faults are cycled in order. Nil means every distinct fault of the built-in catalog
	// whose targets the system has (see CatalogFaults).
	Faults []scenarios.FaultSpec
	// Seed seeds the load (default 1).
	Seed int64
}

func (s SoakSpec) withDefaults() SoakSpec {
	if s.WarmUp == 0 {
		s.WarmUp = s.Duration / 5
	}
	if s.Window == 0 {
		s.Window = min(max(s.Duration/10, 10*time.Second), time.Minute)
	}
	s.Rate = cmp.Or(s.Rate, DefaultSoakRate)
	s.Interval = cmp.Or(s.Interval, time.Second)
	s.MaxRSSGrowth = cmp.Or(s.MaxRSSGrowth, DefaultMaxRSSGrowth)
	s.Seed = cmp.Or(s.Seed, 1)
	return s
}

// Validate reports every problem with s at once (after defaults are applied).
func (s SoakSpec) Validate() []error {
	s = s.withDefaults()
	var errs []error
	if s.Duration <= 0 {
		errs = append(errs, fmt.Errorf("duration %s is not positive", s.Duration))
	}
	if s.WarmUp < 0 || s.Window < 0 || s.Rate < 0 || s.Interval < 0 || s.MaxRSSGrowth < 0 {
		errs = append(errs, errors.New("warm-up, window, rate, interval and growth bound must not be negative"))
	}
	if s.Interval > 0 && s.Window > 0 && s.Window < 3*s.Interval {
		errs = append(errs, fmt.Errorf("window %s holds fewer than 3 samples at interval %s", s.Window, s.Interval))
	}
	if need := s.WarmUp + 2*s.Window + 2*soakSettle; s.Duration > 0 && s.Duration < need {
		errs = append(errs, fmt.Errorf("duration %s is shorter than warm-up + two windows + settling (%s)", s.Duration, need))
	}
	if s.DesignFile != "" {
		if _, err := os.Stat(s.DesignFile); err != nil {
			errs = append(errs, fmt.Errorf("design file: %w", err))
		}
	}
	for i, f := range s.Faults {
		if _, ok := f.Spec.(faults.Fault); !ok {
			errs = append(errs, fmt.Errorf("fault %d (%s) has no injector", i+1, f.Name))
		}
	}
	return errs
}

// Phase offsets of the soak's timeline.
func (s SoakSpec) startWindow() (from, to time.Duration) { return s.WarmUp, s.WarmUp + s.Window }
func (s SoakSpec) endWindow() (from, to time.Duration)   { return s.Duration - s.Window, s.Duration }

// CatalogFaults returns every distinct fault of the built-in catalog (same type, target
// and attributes count once), with each one's hold time capped at 5 s.
func CatalogFaults() ([]scenarios.FaultSpec, error) {
	var out []scenarios.FaultSpec
	seen := map[string]bool{}
	for _, name := range scenarios.Catalog() {
		sc, err := scenarios.Builtin(name)
		if err != nil {
			return nil, fmt.Errorf("load catalog scenario %s: %w", name, err)
		}
		for _, fs := range sc.Faults {
			f, ok := fs.Spec.(faults.Fault)
			if !ok {
				continue
			}
			key := fs.Type + " " + harness.FaultTarget(f) + " " + fmt.Sprint(harness.FaultParams(f))
			if seen[key] {
				continue
			}
			seen[key] = true
			fs.Name = sc.Name + "/" + fs.Name
			out = append(out, fs)
		}
	}
	return out, nil
}

// SoakSample is one process's figures at one moment of the soak.
type SoakSample struct {
	T          time.Duration `json:"t"`
	RSS        float64       `json:"rss_bytes"`
	Goroutines float64       `json:"goroutines"`
	// Started is process_start_time_seconds: a change means the process was restarted.
	Started float64 `json:"started"`
}

// ProcessGrowth compares one process's start and end windows.
type ProcessGrowth struct {
	Component string `json:"component"`
	// StartRSS and EndRSS are medians over the windows, in bytes; Growth is their relative
	// difference.
	StartRSS float64 `json:"start_rss_bytes"`
	EndRSS   float64 `json:"end_rss_bytes"`
	Growth   float64 `json:"growth"`
	// StartGoroutines is the median over the start window and StartGoroutinesMax its
	// highest sample; EndGoroutines is the median over the end window. Goroutines grew when
	// the typical end count exceeds every count seen at the start: requests in flight make
	// the count wobble, a leak makes it climb.
	StartGoroutines    float64 `json:"start_goroutines"`
	StartGoroutinesMax float64 `json:"start_goroutines_max"`
	EndGoroutines      float64 `json:"end_goroutines"`
	// Restarted is set when a fault restarted the process between the windows: a fresh
	// process cannot show a leak, so its growth is not judged.
	Restarted bool         `json:"restarted,omitempty"`
	Judged    bool         `json:"judged"`
	Passed    bool         `json:"passed"`
	Reason    string       `json:"reason,omitempty"`
	Samples   []SoakSample `json:"samples"`
}

// SoakFault counts what the soak did with one fault.
type SoakFault struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Target     string   `json:"target"`
	Injections int      `json:"injections"`
	Errors     []string `json:"errors,omitempty"`
}

// SoakReport is the outcome of a soak.
type SoakReport struct {
	Spec      SoakSpec        `json:"-"`
	Dir       string          `json:"dir"`
	StartedAt time.Time       `json:"started_at"`
	Elapsed   time.Duration   `json:"elapsed"`
	Load      loadgen.Summary `json:"load"`
	Faults    []SoakFault     `json:"faults"`
	Processes []ProcessGrowth `json:"processes"`
}

// Passed reports whether every judged process stayed within the bounds and at least one
// process was judged.
func (r *SoakReport) Passed() bool {
	judged := 0
	for _, p := range r.Processes {
		if p.Judged {
			judged++
			if !p.Passed {
				return false
			}
		}
	}
	return judged > 0
}

// WriteTable prints one line per process: start and end figures, growth and verdict.
func (r *SoakReport) WriteTable(w io.Writer) error {
	s := r.Spec
	sf, st := s.startWindow()
	ef, et := s.endWindow()
	fmt.Fprintf(w, "soak %s at %d req/s: start window %s–%s, end window %s–%s, bound %.0f %% RSS growth, no goroutine growth\n",
		s.Duration, s.Rate, sf, st, ef, et, 100*s.MaxRSSGrowth)
	inj := 0
	for _, f := range r.Faults {
		inj += f.Injections
	}
	fmt.Fprintf(w, "load: %d requests, %d ok, %.1f/s of %.1f/s planned; %d fault injections over %d distinct faults\n",
		r.Load.Issued, r.Load.OK, r.Load.AchievedRate, r.Load.PlannedRate, inj, len(r.Faults))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\tRSS start\tRSS end\tgrowth\tgoroutines start (max)\tend\tverdict\t")
	for _, p := range r.Processes {
		verdict := "ok"
		switch {
		case !p.Judged:
			verdict = "not judged: " + p.Reason
		case !p.Passed:
			verdict = "FAIL: " + p.Reason
		}
		fmt.Fprintf(tw, "%s\t%.1f MiB\t%.1f MiB\t%+.1f %%\t%.0f (%.0f)\t%.0f\t%s\t\n", p.Component,
			p.StartRSS/(1<<20), p.EndRSS/(1<<20), 100*p.Growth, p.StartGoroutines, p.StartGoroutinesMax, p.EndGoroutines, verdict)
	}
	return tw.Flush()
}

// Soak runs spec against the reference system as local processes and returns its report,
// which it also writes to SoakFile in the run directory. harness.WithDir, WithLogger,
// WithReadyTimeout and WithLinkOptions apply; its processes are this executable's "serve"; the other options are for harness.Run. Faults
// are healed and processes stopped on every exit path. A soak whose processes grew
// returns a report that is not Passed and a nil error; errors are for soaks that could
// not run.
func Soak(ctx context.Context, spec SoakSpec, opts ...harness.Option) (*SoakReport, error) {
	spec = spec.withDefaults()
	if errs := spec.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("validate soak: %w", errors.Join(errs...))
	}
	began := time.Now()
	sys := reference.FromSpec(system.Spec{DesignFile: spec.DesignFile})
	up, err := harness.StartSystem(ctx, sys, "soak", opts...)
	if err != nil {
		return nil, err
	}
	cleanup := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	}
	defer func() {
		cctx, cancel := cleanup()
		defer cancel()
		up.Close(cctx)
	}()
	rep := &SoakReport{Spec: spec, Dir: up.Dir, StartedAt: began.UTC()}

	cycle := spec.Faults
	if cycle == nil {
		all, err := CatalogFaults()
		if err != nil {
			return nil, err
		}
		cycle = applicable(all, sys.Topology())
	}
	env := up.Env
	defer func() {
		cctx, cancel := cleanup()
		defer cancel()
		for _, fs := range cycle {
			_ = fs.Spec.(faults.Fault).Heal(cctx, env)
		}
	}()

	tokens := make([]string, 16)
	for i := range tokens {
		if tokens[i], err = sys.Token("soak-"+strconv.Itoa(i), spec.Duration+time.Hour); err != nil {
			return nil, fmt.Errorf("issue token: %w", err)
		}
	}
	load := loadgen.Spec{
		Rate:       loadgen.Rate{Freq: spec.Rate, Per: time.Second},
		Duration:   spec.Duration,
		MaxWorkers: 256,
		Clients:    len(tokens),
		Seed:       spec.Seed,
		Journeys:   sys.Journeys(func(c int) string { return tokens[c] }),
		Mix:        reference.Mix(),
	}

	samples := &sampler{series: map[string][]SoakSample{}}
	loadStart := time.Now()
	scrape, err := sys.Scrape()
	if err != nil {
		return nil, err
	}
	scraper, err := observe.NewScraper(scrape.Targets, observe.WithInterval(spec.Interval), observe.WithStart(loadStart),
		observe.WithPrefixes("process_resident_memory_bytes", "go_goroutines", "process_start_time_seconds"))
	if err != nil {
		return nil, err
	}
	sctx, stopScrape := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = scraper.Run(sctx, samples.add) })
	defer func() { stopScrape(); wg.Wait() }()

	cyc := &cycler{env: env, log: up.Log, faults: cycle, counts: make([]SoakFault, len(cycle))}
	for i, fs := range cycle {
		cyc.counts[i] = SoakFault{Name: fs.Name, Type: fs.Type, Target: harness.FaultTarget(fs.Spec.(faults.Fault))}
	}
	wg.Go(func() {
		sf, _ := spec.startWindow()
		ef, _ := spec.endWindow()
		cyc.run(ctx, loadStart, 0, sf-soakSettle)
		cyc.run(ctx, loadStart, sf+spec.Window, ef-soakSettle)
	})
	up.Log.Info("soak started", "duration", spec.Duration, "rate", spec.Rate, "faults", len(cycle), "dir", up.Dir)
	sum, lerr := loadgen.Run(ctx, load, sys.LoadTargets()[0], nil)
	stopScrape()
	wg.Wait()
	rep.Load = sum
	rep.Faults = cyc.counts
	rep.Elapsed = time.Since(began)
	if lerr != nil {
		return rep, fmt.Errorf("run soak load: %w", lerr)
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("run soak: %w", err)
	}
	rep.Processes = samples.judge(spec)
	if err := rep.save(filepath.Join(up.Dir, SoakFile)); err != nil {
		return rep, err
	}
	return rep, nil
}

func (r *SoakReport) save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode soak report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write soak report: %w", err)
	}
	return nil
}

// applicable keeps the faults whose every target is a component or a service of comps.
func applicable(fs []scenarios.FaultSpec, comps []result.Component) []scenarios.FaultSpec {
	known := map[string]bool{}
	for _, c := range comps {
		known[c.Name], known[c.Service] = true, true
	}
	var out []scenarios.FaultSpec
	for _, f := range fs {
		t, ok := f.Spec.(faults.Targeted)
		if !ok {
			continue
		}
		all := true
		for _, name := range t.Targets() {
			all = all && known[name]
		}
		if all {
			out = append(out, f)
		}
	}
	return out
}

// cycler injects the faults one after the other, each for its own hold time (capped).
type cycler struct {
	env    faults.Env
	log    interface{ Warn(string, ...any) }
	faults []scenarios.FaultSpec
	next   int
	counts []SoakFault
}

// run cycles faults between offsets from and to of the load; a fault that would not be
// healed by to is not started.
func (c *cycler) run(ctx context.Context, loadStart time.Time, from, to time.Duration) {
	if len(c.faults) == 0 || !sleepUntil(ctx, loadStart.Add(from)) {
		return
	}
	for ctx.Err() == nil {
		i := c.next % len(c.faults)
		fs := c.faults[i]
		hold := min(max(fs.For.Std(), time.Second), maxSoakFault)
		if time.Since(loadStart)+hold > to {
			return
		}
		c.next++
		f := fs.Spec.(faults.Fault)
		if err := f.Inject(ctx, c.env); err != nil {
			c.counts[i].Errors = appendCapped(c.counts[i].Errors, "inject: "+err.Error())
		}
		c.counts[i].Injections++
		tm := time.NewTimer(hold)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
		}
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		if err := f.Heal(hctx, c.env); err != nil {
			c.counts[i].Errors = appendCapped(c.counts[i].Errors, "heal: "+err.Error())
			c.log.Warn("heal soak fault", "fault", fs.Name, "err", err)
		}
		cancel()
		if !sleepUntil(ctx, time.Now().Add(soakGap)) {
			return
		}
	}
}

func appendCapped(xs []string, x string) []string {
	if len(xs) >= 5 {
		return xs
	}
	return append(xs, x)
}

// sampler groups scraped samples into one series per process. A tick's samples of one
// process share their offset, which is how they are put together.
type sampler struct {
	mu     sync.Mutex
	series map[string][]SoakSample
}

func (s *sampler) add(x observe.Sample) {
	if x.Name == observe.UpMetric {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ser := s.series[x.Component]
	if len(ser) == 0 || ser[len(ser)-1].T != x.T {
		ser = append(ser, SoakSample{T: x.T})
	}
	last := &ser[len(ser)-1]
	switch x.Name {
	case "process_resident_memory_bytes":
		last.RSS = x.Value
	case "go_goroutines":
		last.Goroutines = x.Value
	case "process_start_time_seconds":
		last.Started = x.Value
	}
	s.series[x.Component] = ser
}

// judge compares every process's start and end windows.
func (s *sampler) judge(spec SoakSpec) []ProcessGrowth {
	s.mu.Lock()
	defer s.mu.Unlock()
	sf, st := spec.startWindow()
	ef, et := spec.endWindow()
	var out []ProcessGrowth
	for _, name := range slices.Sorted(maps.Keys(s.series)) {
		ser := s.series[name]
		start, end := between(ser, sf, st), between(ser, ef, et)
		p := ProcessGrowth{Component: name, Samples: ser}
		if len(start) == 0 || len(end) == 0 {
			p.Reason = "no samples in a window (down?)"
			out = append(out, p)
			continue
		}
		p.StartRSS = median(start, func(x SoakSample) float64 { return x.RSS })
		p.EndRSS = median(end, func(x SoakSample) float64 { return x.RSS })
		p.StartGoroutines = median(start, func(x SoakSample) float64 { return x.Goroutines })
		p.EndGoroutines = median(end, func(x SoakSample) float64 { return x.Goroutines })
		for _, x := range start {
			p.StartGoroutinesMax = max(p.StartGoroutinesMax, x.Goroutines)
		}
		if p.StartRSS > 0 {
			p.Growth = (p.EndRSS - p.StartRSS) / p.StartRSS
		}
		if start[0].Started != end[len(end)-1].Started {
			p.Restarted = true
			p.Reason = "restarted by a fault between the windows"
			out = append(out, p)
			continue
		}
		p.Judged, p.Passed = true, true
		var why []string
		if p.Growth > spec.MaxRSSGrowth {
			p.Passed = false
			why = append(why, fmt.Sprintf("RSS grew %.1f %% > %.0f %%", 100*p.Growth, 100*spec.MaxRSSGrowth))
		}
		if p.EndGoroutines > p.StartGoroutinesMax {
			p.Passed = false
			why = append(why, fmt.Sprintf("goroutines grew to %.0f > %.0f", p.EndGoroutines, p.StartGoroutinesMax))
		}
		p.Reason = strings.Join(why, "; ")
		out = append(out, p)
	}
	return out
}

func between(ser []SoakSample, from, to time.Duration) []SoakSample {
	var out []SoakSample
	for _, x := range ser {
		if x.T >= from && x.T < to && x.RSS > 0 {
			out = append(out, x)
		}
	}
	return out
}

func median(xs []SoakSample, f func(SoakSample) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// sleepUntil waits until t or ctx's end and reports whether t was reached.
func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-time.After(time.Until(t)):
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}
