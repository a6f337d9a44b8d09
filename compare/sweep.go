package compare

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// Sweep defaults: the bounds a knee is found against when the scenario has no check that
// gives one, and the harness's own limits.
const (
	// DefaultKneeP99 is the p99 bound without a scenario check: half a second is where an
	// interactive page is felt as slow, and well above the reference system's few
	// milliseconds at rest, so a knee is the system's, not noise.
	DefaultKneeP99 = 500 * time.Millisecond
	// DefaultKneeErrors is the error-rate bound without a scenario check.
	DefaultKneeErrors = 0.01
	// DefaultMaxLag is the scheduling lag (p99 of actual minus planned start) beyond which
	// the load generator fell behind its schedule: vegeta on a loaded 2-core machine
	// keeps it to a few milliseconds while it keeps up.
	DefaultMaxLag = 100 * time.Millisecond
	// DefaultBusyCPU is the machine CPU share at or above which a point is flagged busy:
	// harness and system then compete for the same cores.
	DefaultBusyCPU = 0.95
	// MaxRates bounds a sweep: every rate runs every design twice.
	MaxRates = scenarios.MaxSweepRates
)

// SweepConfig says what a sweep runs and how it judges its points.
type SweepConfig struct {
	// Rates are the offered rates in requests per second, ascending and distinct.
	Rates []int
	// Bounds are the knee's bounds with their sources (see Bounds).
	Bounds result.SweepBounds
	// MaxLag and BusyCPU are the harness's limits (0: DefaultMaxLag, DefaultBusyCPU).
	MaxLag  time.Duration
	BusyCPU float64
	// OnPoint is called before each rate and mode is run, so a CLI can say which.
	OnPoint func(rate int, faults bool)
}

// ParseRates reads "50,100,200,400": whole requests per second, ascending, distinct,
// each within the scenario format's bound, at most MaxRates.
func ParseRates(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSuffix(strings.TrimSpace(f), "/s")
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > scenarios.MaxRatePerSecond {
			return nil, fmt.Errorf("parse rates: %q is not a whole number of requests per second in 1..%d", f, scenarios.MaxRatePerSecond)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("parse rates: %d after %d; give the rates ascending, each once", n, out[len(out)-1])
		}
		out = append(out, n)
	}
	if len(out) > MaxRates {
		return nil, fmt.Errorf("parse rates: %d rates, at most %d", len(out), MaxRates)
	}
	return out, nil
}

// Bounds are the knee's bounds for sc: the tightest p99 latency check and the tightest
// error_rate check of the scenario that filter no journey or route (they speak for the
// whole load, as a sweep point does); where the scenario has none, the sweep block's, and
// else the defaults. p99 and errors given explicitly (a flag; zero: not given) win.
func Bounds(sc *scenarios.Scenario, p99 time.Duration, errs float64) result.SweepBounds {
	b := result.SweepBounds{
		P99MS: ms(DefaultKneeP99), P99Source: "default (--knee-p99)",
		ErrorRate: DefaultKneeErrors, ErrorRateSource: "default (--knee-errors)",
	}
	if sc != nil && sc.Sweep != nil {
		if sc.Sweep.KneeP99 > 0 {
			b.P99MS, b.P99Source = ms(sc.Sweep.KneeP99.Std()), "sweep.knee_p99"
		}
		if sc.Sweep.KneeErrors != nil {
			b.ErrorRate, b.ErrorRateSource = float64(*sc.Sweep.KneeErrors), "sweep.knee_errors"
		}
	}
	if sc != nil {
		bestLat, bestErr := math.Inf(1), math.Inf(1)
		for phase, c := range scenarioChecks(sc) {
			name := c.Name
			if name == "" {
				name = c.Type
			}
			switch s := c.Spec.(type) {
			case *scenarios.LatencyCheck:
				if s.Percentile == "p99" && s.Journey == "" && s.Route == "" && ms(s.Max.Std()) < bestLat {
					bestLat = ms(s.Max.Std())
					b.P99MS, b.P99Source = bestLat, "check "+phase+" "+name
				}
			case *scenarios.ErrorRateCheck:
				if s.Journey == "" && s.Route == "" && float64(s.Max) < bestErr {
					bestErr = float64(s.Max)
					b.ErrorRate, b.ErrorRateSource = bestErr, "check "+phase+" "+name
				}
			}
		}
	}
	if p99 > 0 {
		b.P99MS, b.P99Source = ms(p99), "--knee-p99"
	}
	if errs > 0 {
		b.ErrorRate, b.ErrorRateSource = errs, "--knee-errors"
	}
	return b
}

// scenarioChecks yields every check of sc with the phase it sits in.
func scenarioChecks(sc *scenarios.Scenario) func(func(string, scenarios.Check) bool) {
	return func(yield func(string, scenarios.Check) bool) {
		lists := []struct {
			phase string
			cs    []scenarios.Check
		}{{"steady_state", sc.SteadyState}, {"before", sc.Expect.Before}, {"after", sc.Expect.After}, {"overall", sc.Expect.Overall}}
		faults := make([]string, 0, len(sc.Expect.During))
		for f := range sc.Expect.During {
			faults = append(faults, f)
		}
		slices.Sort(faults)
		for _, f := range faults {
			lists = append(lists, struct {
				phase string
				cs    []scenarios.Check
			}{"during:" + f, sc.Expect.During[f]})
		}
		for _, l := range lists {
			for _, c := range l.cs {
				if !yield(l.phase, c) {
					return
				}
			}
		}
	}
}

// AtRate is sc offered a constant rate per second instead of its own load shape; without
// faults it is also stripped of its fault timeline and of what refers to it (the checks
// of the faults' windows, fault_landed), so the same design can be measured at rest.
func AtRate(sc *scenarios.Scenario, rate int, faults bool) *scenarios.Scenario {
	cp := *sc
	cp.Load.Rate = scenarios.Rate{Freq: rate, Per: time.Second}
	cp.Load.Ramp = nil
	cp.Sweep = nil
	if !faults {
		cp.Faults = nil
		cp.Expect.During = nil
		drop := func(cs []scenarios.Check) []scenarios.Check {
			return slices.DeleteFunc(slices.Clone(cs), func(c scenarios.Check) bool { return c.Type == scenarios.CheckFaultLanded })
		}
		cp.Expect.Before, cp.Expect.After, cp.Expect.Overall = drop(cp.Expect.Before), drop(cp.Expect.After), drop(cp.Expect.Overall)
		cp.SteadyState = drop(cp.SteadyState)
	}
	return &cp
}

// Window is the span of the load, from its start, that every point of a sweep of sc
// measures: from the first injection to the last heal, or the whole load without faults.
func Window(sc *scenarios.Scenario) (from, to time.Duration) {
	if len(sc.Faults) == 0 {
		return 0, sc.Load.Duration.Std()
	}
	from, to = time.Duration(math.MaxInt64), 0
	for _, f := range sc.Faults {
		from = min(from, f.At.Std())
		to = max(to, f.At.Std()+f.For.Std())
	}
	return from, to
}

// RunSweep runs every variant at every rate of cfg, with the scenario's faults and
// without (once when it has none), through Run, so each point is an ordinary comparison
// run in DIR/rate-<r>/<faults|no-faults>/<design>/1 with its own result.json and reports.
// Designs are interleaved at each rate, and rates go up, so a machine that gets busier
// slows every design alike. While each run goes the machine's CPU and this process's are
// sampled. It returns the curves with every point judged (JudgeHarness) and each curve's
// knee (FindKnee); a cancelled ctx or an invalid scenario stops it with what was done.
func RunSweep(ctx context.Context, variants []Variant, cfg SweepConfig, opts ...Option) (*result.Sweep, error) {
	if len(cfg.Rates) == 0 {
		return nil, errors.New("sweep designs: no rates")
	}
	if len(variants) == 0 || variants[0].Scenario == nil {
		return nil, errors.New("sweep designs: no designs")
	}
	o := options{repeat: 1}
	for _, fn := range opts {
		if fn != nil {
			fn(&o)
		}
	}
	if o.repeat != 1 {
		return nil, errors.New("sweep designs: a sweep runs each point once; repeat the sweep instead")
	}
	dir, release, err := claimDefaultDir(o.dir, "sweep", variants[0].Scenario.Name)
	if err != nil {
		return nil, fmt.Errorf("sweep designs: %w", err)
	}
	defer release()
	sc := variants[0].Scenario
	from, to := Window(sc)
	h := result.SweepHarness{
		MinRateShare: loadgen.MinRateShare, MaxLagP99MS: ms(orDefault(cfg.MaxLag, DefaultMaxLag)),
		BusyCPU: cfg.BusyCPU, CPUs: numCPU(),
	}
	if h.BusyCPU <= 0 {
		h.BusyCPU = DefaultBusyCPU
	}
	sw := &result.Sweep{
		Version: result.SweepVersion, Scenario: sc.Name,
		WindowStartMS: ms(from), WindowEndMS: ms(to), Bounds: cfg.Bounds, Harness: h,
	}
	for _, r := range cfg.Rates {
		sw.Rates = append(sw.Rates, float64(r))
	}
	modes := []bool{true, false}
	if len(sc.Faults) == 0 {
		modes = []bool{false}
	}
	sw.Designs = make([]result.SweepDesign, len(variants))
	for i, v := range variants {
		sw.Designs[i].Design = v.Name
		for _, m := range modes {
			sw.Designs[i].Curves = append(sw.Designs[i].Curves, result.SweepCurve{Faults: m})
		}
	}
	cpu := startCPUSampler(ctx)
	defer cpu.stop()
	finish := func() {
		for i := range sw.Designs {
			for j := range sw.Designs[i].Curves {
				c := &sw.Designs[i].Curves[j]
				c.Knee = FindKnee(c.Points, sw.Bounds)
			}
		}
	}
	for _, rate := range cfg.Rates {
		for mi, withFaults := range modes {
			if cfg.OnPoint != nil {
				cfg.OnPoint(rate, withFaults)
			}
			vs := make([]Variant, len(variants))
			for i, v := range variants {
				vs[i] = Variant{Name: v.Name, Scenario: AtRate(v.Scenario, rate, withFaults)}
			}
			sub := filepath.Join(dir, "rate-"+strconv.Itoa(rate), modeName(withFaults))
			got, err := Run(ctx, vs, append(slices.Clone(opts), Dir(sub))...)
			for i, g := range got {
				for _, res := range g.Runs {
					p := measurePoint(res, historyPath(res), from, to, cpu)
					p.Rate = float64(rate)
					JudgeHarness(&p, h)
					sw.Designs[i].Curves[mi].Points = append(sw.Designs[i].Curves[mi].Points, p)
				}
			}
			if err != nil {
				finish()
				return sw, fmt.Errorf("sweep designs at %d/s: %w", rate, err)
			}
		}
	}
	finish()
	return sw, nil
}

func modeName(faults bool) string {
	if faults {
		return "faults"
	}
	return "no-faults"
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measurePoint reduces one run to a point: the latency and error rate of the requests
// that started in [from, to) of the load, the scheduling lag of all of them, the rate the
// load achieved, and the CPU over the load. A run without a history is a point without
// figures, which JudgeHarness marks invalid.
func measurePoint(res *result.Run, hist string, from, to time.Duration, cpu *cpuSampler) result.SweepPoint {
	p := result.SweepPoint{Verdict: res.Verdict, RunDir: res.RunDir}
	if res.Load.PlannedRate > 0 {
		p.Achieved = res.Load.AchievedRate
		p.SentShare = res.Load.AchievedRate / res.Load.PlannedRate
	}
	for _, f := range res.Faults {
		switch {
		case f.Injected == 0:
			p.Reason = "fault " + f.Name + " was never injected"
		case f.Effect != nil && !f.Effect.Landed:
			p.Reason = "fault " + f.Name + " did not land"
		case f.Traffic != nil && f.Traffic.Connections == 0:
			p.Reason = "no request crossed the links of fault " + f.Name
		}
	}
	if res.Verdict == result.Error {
		p.Reason = "the run failed: " + res.Reason
	}
	load := res.LoadStart.Std()
	if hist != "" {
		lat, lag, failed := readWindow(hist, load+from, load+to)
		p.Requests = len(lat)
		p.P50MS, p.P99MS = ms(percentile(lat, 50)), ms(percentile(lat, 99))
		if len(lat) > 0 {
			p.ErrorRate = float64(failed) / float64(len(lat))
		}
		p.LagP99MS = ms(percentile(lag, 99))
	}
	if !res.StartedAt.IsZero() {
		start := res.StartedAt.Add(load)
		// The load's scheduled length: the generator's work is sending, which ends with it.
		end := start.Add(loadDuration(res))
		p.CPU, p.HarnessCPU = cpu.share(start, end)
	}
	return p
}

// loadDuration is how long the run's load was scheduled for: its last phase's end.
func loadDuration(res *result.Run) time.Duration {
	var end time.Duration
	for _, ph := range res.Phases {
		end = max(end, ph.End.Std())
	}
	return max(end-res.LoadStart.Std(), 0)
}

// readWindow streams a history and returns the latency of every request that started in
// [from, to) on the run's clock with how many of them failed, and every request's
// scheduling lag.
func readWindow(path string, from, to time.Duration) (lat, lag []time.Duration, failed int) {
	rd, err := history.Open(path)
	if err != nil {
		return nil, nil, 0
	}
	defer rd.Close()
	for ev, err := range rd.Events() {
		if err != nil {
			continue
		}
		r, ok := ev.AsRequest()
		if !ok {
			continue
		}
		lag = append(lag, max(r.Start-r.Planned, 0))
		if r.Start < from || r.Start >= to || r.Cut {
			continue
		}
		lat = append(lat, r.Latency)
		if r.Failed() {
			failed++
		}
	}
	return lat, lag, failed
}

// percentile is the nearest-rank p-th percentile of ds, 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(float64(len(s))*p/100)) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// JudgeHarness marks a point invalid when it shows the harness's limit rather than the
// system's: the generator sent less than MinRateShare of the requests due, or its
// scheduling lag p99 exceeded MaxLagP99MS (it could not keep its schedule: too few
// workers for the system's latency, or a starved machine), or the run itself could not
// show the point (a reason measurePoint set: a fault that did not land, a harness error),
// or no request fell in the window. A point at exactly a limit is valid. A busy machine
// (CPU at or above BusyCPU) is flagged, not invalidated: the lag says whether the
// generator kept up on it.
func JudgeHarness(p *result.SweepPoint, h result.SweepHarness) {
	p.Busy = h.BusyCPU > 0 && p.CPU >= h.BusyCPU
	var why []string
	if p.Reason != "" {
		why = append(why, p.Reason)
	}
	// A run that ended in a harness error sent nothing worth judging; its reason says why.
	generator := p.Verdict != result.Error
	if generator && p.SentShare < h.MinRateShare {
		why = append(why, fmt.Sprintf("the load generator fell behind: it sent %.0f%% of the requests due (%.1f of %.0f/s), below %.0f%%",
			100*p.SentShare, p.Achieved, p.Rate, 100*h.MinRateShare))
	}
	if generator && h.MaxLagP99MS > 0 && p.LagP99MS > h.MaxLagP99MS {
		why = append(why, fmt.Sprintf("the load generator fell behind its schedule: scheduling lag p99 %s > %s",
			fmtMS(p.LagP99MS), fmtMS(h.MaxLagP99MS)))
	}
	if p.Requests == 0 && p.Reason == "" {
		why = append(why, "no request started in the window")
	}
	p.Invalid = len(why) > 0
	p.Reason = strings.Join(why, "; ")
}

// FindKnee is the first valid point, in rate order, whose p99 or error rate exceeds its
// bound (a figure at its bound holds, as a check's max does). Invalid points are skipped
// and counted: they show the harness, not the design. Without such a point the knee is
// not found and LastGood is the highest valid rate.
func FindKnee(points []result.SweepPoint, b result.SweepBounds) result.SweepKnee {
	ps := slices.Clone(points)
	slices.SortStableFunc(ps, func(a, b result.SweepPoint) int { return cmpFloat(a.Rate, b.Rate) })
	var k result.SweepKnee
	for _, p := range ps {
		if p.Invalid {
			k.Excluded++
			continue
		}
		var left []string
		if p.P99MS > b.P99MS {
			left = append(left, fmt.Sprintf("p99 %s > %s", fmtMS(p.P99MS), fmtMS(b.P99MS)))
		}
		if p.ErrorRate > b.ErrorRate {
			left = append(left, fmt.Sprintf("errors %s > %s", fmtPct(p.ErrorRate), fmtPct(b.ErrorRate)))
		}
		if p.Verdict == result.Aborted {
			left = append(left, "aborted by its stop condition")
		}
		if len(left) > 0 {
			k.Found, k.Rate, k.Why = true, p.Rate, strings.Join(left, ", ")
			return k
		}
		k.LastGood = p.Rate
	}
	switch {
	case k.LastGood == 0:
		k.Why = "no valid point"
	default:
		k.Why = fmt.Sprintf("within bounds up to %g/s", k.LastGood)
	}
	return k
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fmtMS writes milliseconds as a reader compares them: seconds to 10 ms from a second
// up, milliseconds to a tenth below, so a figure just over its bound never reads as equal.
func fmtMS(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(math.Round(v/10)/100, 'f', -1, 64) + "s"
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) + "ms"
}

func fmtPct(v float64) string { return strconv.FormatFloat(math.Round(1e5*v)/1e3, 'f', -1, 64) + "%" }
