package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/compare"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/reports"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// Load sweep file names, written into the sweep's directory.
const (
	sweepJSONFile  = "sweep.json"
	sweepChartFile = "sweep.svg"
)

// sweepFlags are compare's load-sweep flags.
type sweepFlags struct {
	rates      string
	kneeP99    time.Duration
	kneeErrors string
	maxLag     time.Duration
}

func (f *sweepFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.rates, "rates", "", "sweep the load: offered rates in requests/s, ascending, such as 50,100,200,400 (overrides the scenario's sweep.rates)")
	cmd.Flags().DurationVar(&f.kneeP99, "knee-p99", 0, fmt.Sprintf("p99 bound of the knee; given, it wins over the scenario's p99 latency check and sweep.knee_p99 (default %s without either)", compare.DefaultKneeP99))
	cmd.Flags().StringVar(&f.kneeErrors, "knee-errors", "", fmt.Sprintf("error-rate bound of the knee, such as 1%% or 0.01; given, it wins over the scenario's error_rate check and sweep.knee_errors (default %g%% without either)", 100*compare.DefaultKneeErrors))
	cmd.Flags().DurationVar(&f.maxLag, "max-lag", compare.DefaultMaxLag, "scheduling lag p99 beyond which the load generator fell behind and a point is invalid")
}

// config is the sweep the flags and the scenario ask for; sweep is false for a plain
// comparison (no --rates, no sweep: block). Sweep-only flags without a sweep are a usage
// error rather than silently ignored.
func (f *sweepFlags) config(cmd *cobra.Command, sc *scenarios.Scenario) (compare.SweepConfig, bool, error) {
	var cfg compare.SweepConfig
	switch {
	case f.rates != "":
		rates, err := compare.ParseRates(f.rates)
		if err != nil {
			return cfg, false, usagef("compare: --rates: %v", err)
		}
		cfg.Rates = rates
	case sc.Sweep != nil:
		cfg.Rates = sc.Sweep.Rates
	default:
		for _, name := range []string{"knee-p99", "knee-errors", "max-lag"} {
			if cmd.Flags().Changed(name) {
				return cfg, false, usagef("compare: --%s belongs to a load sweep; add --rates 50,100,200 or a sweep: block", name)
			}
		}
		return cfg, false, nil
	}
	var errs float64
	if f.kneeErrors != "" {
		v, err := parseShare(f.kneeErrors)
		if err != nil {
			return cfg, false, usagef("compare: --knee-errors: %v", err)
		}
		errs = v
	}
	if cmd.Flags().Changed("knee-p99") && f.kneeP99 <= 0 {
		return cfg, false, usagef("compare: --knee-p99 must be above 0")
	}
	if f.maxLag <= 0 {
		return cfg, false, usagef("compare: --max-lag must be above 0")
	}
	cfg.Bounds = compare.Bounds(sc, f.kneeP99, errs)
	cfg.MaxLag = f.maxLag
	return cfg, true, nil
}

// parseShare reads "1%" or "0.01" as a share in (0, 1].
func parseShare(s string) (float64, error) {
	t := strings.TrimSpace(s)
	scale := 1.0
	if p, ok := strings.CutSuffix(t, "%"); ok {
		t, scale = strings.TrimSpace(p), 100
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v/scale > 0) || v/scale > 1 {
		return 0, fmt.Errorf("%q is not a share in (0, 1], such as 1%% or 0.01", s)
	}
	return v / scale, nil
}

// sweepDesigns runs the sweep, writes each run's reports, sweep.json, sweep.svg and
// compare.md, and prints the sweep's table with the paths last.
func sweepDesigns(ctx context.Context, out, errOut io.Writer, variants []compare.Variant, dir string, cfg compare.SweepConfig, extra ...harness.Option) error {
	dir, release, err := harness.ClaimOutDir(dir, compare.DefaultDir("sweep", variants[0].Scenario.Name))
	if err != nil {
		return err
	}
	defer release()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve sweep dir: %w", err)
	}
	dir = abs
	var point string // the rate and mode being run, guarded by printer.mu
	printer := &designRuns{ctx: ctx, errOut: errOut, label: func(name string, _ int) string { return name + " " + point }}
	cfg.OnPoint = func(rate int, faults bool) {
		printer.mu.Lock()
		point = fmt.Sprintf("%d/s %s", rate, map[bool]string{true: "with faults", false: "without faults"}[faults])
		printer.mu.Unlock()
	}
	began := time.Now()
	sw, err := compare.RunSweep(ctx, variants, cfg, append(printer.options(extra), compare.Dir(dir))...)
	if err != nil {
		// What was measured before an interruption is still written: a long sweep's
		// first rates are worth keeping.
		if ctx.Err() != nil && sw != nil {
			_, _, _, _ = writeSweep(dir, sw)
		}
		return comparisonErr(ctx, errOut, err)
	}
	jsonPath, chartPath, mdPath, err := writeSweep(dir, sw)
	if err != nil {
		return err
	}
	var md bytes.Buffer
	if err := reports.SweepMarkdown(&md, sw); err != nil {
		return err
	}
	fmt.Fprintln(out, strings.TrimSpace(md.String()))
	runs := 0
	for _, d := range sw.Designs {
		for _, c := range d.Curves {
			runs += len(c.Points)
		}
	}
	fmt.Fprintf(out, "\n%d design(s) × %d rate(s), %d run(s) in %s\n", len(sw.Designs), len(sw.Rates), runs, time.Since(began).Round(time.Second))
	fmt.Fprintf(out, "  runs:    %s\n", filepath.Join(dir, "rate-<r>", "<faults|no-faults>", "<design>", "1"))
	fmt.Fprintf(out, "  data:    %s\n", jsonPath)
	fmt.Fprintf(out, "  chart:   %s\n", chartPath)
	fmt.Fprintf(out, "  summary: %s\n", mdPath)
	return nil
}

// writeSweep writes sweep.json, sweep.svg and compare.md into dir, each whole or not at all.
func writeSweep(dir string, sw *result.Sweep) (jsonPath, chartPath, mdPath string, err error) {
	var data, chart, md bytes.Buffer
	if err := sw.Write(&data); err != nil {
		return "", "", "", err
	}
	if err := reports.SweepChart(&chart, sw); err != nil {
		return "", "", "", err
	}
	if err := reports.SweepMarkdown(&md, sw); err != nil {
		return "", "", "", err
	}
	jsonPath, chartPath, mdPath = filepath.Join(dir, sweepJSONFile), filepath.Join(dir, sweepChartFile), filepath.Join(dir, compareMarkdownFile)
	for _, f := range []struct {
		path string
		b    []byte
	}{{jsonPath, data.Bytes()}, {chartPath, chart.Bytes()}, {mdPath, md.Bytes()}} {
		if err := writeAtomic(f.path, f.b); err != nil {
			return "", "", "", err
		}
	}
	return jsonPath, chartPath, mdPath, nil
}
