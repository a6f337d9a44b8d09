package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/compare"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/reports"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// Comparison report file names, written into the comparison's directory.
const (
	compareHTMLFile     = "compare.html"
	compareMarkdownFile = "compare.md"
)

func newCompareCmd() *cobra.Command {
	var (
		dir    string
		seed   int64
		repeat int
		rf     runRuntimeFlags
		sf     sweepFlags
	)
	cmd := &cobra.Command{
		Use:   "compare FILE | FILE FILE...",
		Short: "Run the same seeded load and faults against several designs and compare them",
		Long: "Compare runs one scenario against each design it lists under compare: (or several\n" +
			"scenario files that differ only in their design and checks, such as the\n" +
			"cascading-failure pair), --repeat times each, with the same seed, load and fault\n" +
			"schedule. It writes compare.html and compare.md: every check's figure per design, its\n" +
			"spread over the repeats and the winner, with latency, error and throughput charts on\n" +
			"one time axis. Each run keeps its own result.json and reports under DIR/<design>/<n>.\n" +
			"expect_failure is ignored: which design fails is what a comparison shows.\n" +
			"With --rates (or a sweep: block in the scenario) it sweeps the load instead: every\n" +
			"design at every rate, with and without the faults, drawn as latency and errors against\n" +
			"offered load on one chart (sweep.svg, data in sweep.json, table in compare.md) with\n" +
			"each design's knee; points where the load generator fell behind are marked invalid.\n" +
			"Exit codes: 0 the comparison was made (whatever the designs' verdicts), 3 an invalid\n" +
			"scenario or a harness error, 4 aborted.",
		Example: "  faultline compare scenarios/compare/cascading-failure.yaml --repeat 3\n" +
			"  faultline compare scenarios/compare/cascading-failure.yaml --rates 50,100,200,400\n" +
			"  faultline compare scenarios/cascading-failure-no-breaker.yaml scenarios/cascading-failure-with-breaker.yaml",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s needs a scenario with a compare list, or two or more scenario files", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if repeat < 1 || repeat > compare.MaxRepeat {
				return usagef("compare: --repeat must be in 1..%d", compare.MaxRepeat)
			}
			variants, err := compareVariants(cmd.ErrOrStderr(), args)
			if err != nil {
				return err
			}
			cfg, sweep, err := sf.config(cmd, variants[0].Scenario)
			if err != nil {
				return err
			}
			if sweep && cmd.Flags().Changed("repeat") {
				return usagef("compare: --repeat and a sweep do not go together; a sweep runs each point once, run it again for the spread")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rtOpts, err := rf.options(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if sweep {
				return sweepDesigns(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), variants, dir, cfg, append(seedOpt(cmd, seed), rtOpts...)...)
			}
			return compareDesigns(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), variants, dir, repeat, append(seedOpt(cmd, seed), rtOpts...)...)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "comparison directory (default "+harness.DefaultRunsDir+"/<UTC time>-compare-<scenario>)")
	cmd.Flags().Int64Var(&seed, "seed", 0, "override the scenario's seed (every design and repeat gets the same one)")
	cmd.Flags().IntVar(&repeat, "repeat", 1, "runs per design, to show each figure's spread")
	rf.register(cmd)
	sf.register(cmd)
	return cmd
}

// compareVariants loads the arguments and validates them before anything starts: one
// scenario with a compare list, or several scenarios that differ only in design.
func compareVariants(errOut io.Writer, args []string) ([]compare.Variant, error) {
	var scs []*scenarios.Scenario
	for _, a := range args {
		sc, err := loadScenario(a)
		if err != nil {
			return nil, err
		}
		if errs := sc.Validate(scenarios.DefaultShape(sc.System)); len(errs) > 0 {
			for _, e := range errs {
				fmt.Fprintln(errOut, e)
			}
			return nil, &verdictError{verdict: result.Error, reason: fmt.Sprintf("%s has %d problem(s)", sc.File, len(errs))}
		}
		scs = append(scs, sc)
	}
	if len(scs) == 1 {
		if len(scs[0].Compare) == 0 {
			return nil, usagef("compare: %s lists no designs; add a compare: list such as [{name: breaker-off, design: designs/no-breaker.yaml}, {name: breaker-on, design: designs/resilient.yaml}], or give two scenario files", scs[0].File)
		}
		v, err := compare.Variants(scs[0])
		if err != nil {
			return nil, usagef("%v", err)
		}
		return v, nil
	}
	v, err := compare.VariantsOf(scs...)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return v, nil
}

// compareDesigns runs the comparison, writes each run's reports and the comparison
// report, and prints the comparison table with the report paths last.
func compareDesigns(ctx context.Context, out, errOut io.Writer, variants []compare.Variant, dir string, repeat int, extra ...harness.Option) error {
	dir, release, err := harness.ClaimOutDir(dir, compare.DefaultDir("compare", variants[0].Scenario.Name))
	if err != nil {
		return err
	}
	defer release()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve compare dir: %w", err)
	}
	dir = abs
	runs := &designRuns{ctx: ctx, errOut: errOut, label: func(name string, rep int) string {
		return fmt.Sprintf("%s %d/%d", name, rep, repeat)
	}}
	began := time.Now()
	groups, err := compare.Run(ctx, variants, append(runs.options(extra), compare.Repeat(repeat), compare.Dir(dir))...)
	if err != nil {
		return comparisonErr(ctx, errOut, err)
	}
	htmlPath, mdPath, err := writeComparison(ctx, dir, groups)
	if err != nil {
		return err
	}
	var md bytes.Buffer
	if err := reports.CompareMarkdown(&md, groups); err != nil {
		return err
	}
	fmt.Fprintln(out, strings.TrimSpace(md.String()))
	fmt.Fprintf(out, "\n%d design(s) × %d run(s) in %s\n", len(groups), repeat, time.Since(began).Round(time.Second))
	fmt.Fprintf(out, "  runs:       %s\n", filepath.Join(dir, "<design>", "<n>"))
	fmt.Fprintf(out, "  summary:    %s\n", mdPath)
	fmt.Fprintf(out, "  comparison: %s\n", htmlPath)
	return nil
}

// writeComparison writes compare.html and compare.md into dir, each whole or not at all.
func writeComparison(ctx context.Context, dir string, groups []result.DesignRuns) (htmlPath, mdPath string, err error) {
	var page, md bytes.Buffer
	if err := reports.Compare(ctx, &page, groups); err != nil {
		return "", "", err
	}
	if err := reports.CompareMarkdown(&md, groups); err != nil {
		return "", "", err
	}
	htmlPath, mdPath = filepath.Join(dir, compareHTMLFile), filepath.Join(dir, compareMarkdownFile)
	for _, f := range []struct {
		path string
		b    []byte
	}{{htmlPath, page.Bytes()}, {mdPath, md.Bytes()}} {
		if err := writeAtomic(f.path, f.b); err != nil {
			return "", "", err
		}
	}
	return htmlPath, mdPath, nil
}

// writeAtomic writes b aside and renames it into place, so a reader never sees half a file.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// designRuns is the command's side of a comparison's runs, shared by compare and the load
// sweep: a progress printer per run, a verdict line when it ends, and its reports written.
type designRuns struct {
	ctx    context.Context
	errOut io.Writer
	label  func(variant string, repeat int) string // called with mu held

	mu sync.Mutex // the printer changes between runs while a run's progress may still report
	pp *progressPrinter
}

// options are the comparison's options that print and report every run; extra go to
// every run.
func (d *designRuns) options(extra []harness.Option) []compare.Option {
	log := slog.New(slog.NewTextHandler(d.errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	runOpts := append([]harness.Option{harness.WithLogger(log), harness.WithProgress(func(p harness.Progress) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.pp != nil {
			d.pp.print(p)
		}
	})}, extra...)
	return []compare.Option{
		compare.RunOptions(runOpts...),
		compare.OnRunStart(func(name string, rep int) {
			d.mu.Lock()
			d.pp = newProgressPrinter(d.errOut, d.label(name, rep))
			d.mu.Unlock()
		}),
		compare.OnRunDone(func(name string, rep int, res *result.Run) {
			d.mu.Lock()
			d.pp.done()
			d.pp = nil
			label := d.label(name, rep)
			d.mu.Unlock()
			line := fmt.Sprintf("%s: %s", label, res.Verdict)
			if res.Reason != "" {
				line += " — " + res.Reason
			}
			fmt.Fprintln(d.errOut, line)
			if _, rerr := writeReports(context.WithoutCancel(d.ctx), res.RunDir, res, storedHistory(filepath.Join(res.RunDir, harness.ResultFile), res)); rerr != nil {
				fmt.Fprintf(d.errOut, "faultline: %v\n", rerr)
			}
		}),
	}
}

// comparisonErr maps a comparison's failure to the command's: an invalid scenario prints
// its problems (exit 3), an interruption is aborted (exit 4).
func comparisonErr(ctx context.Context, errOut io.Writer, err error) error {
	var verr *harness.ValidationError
	switch {
	case errors.As(err, &verr):
		for _, e := range verr.Errs {
			fmt.Fprintln(errOut, e)
		}
		return &verdictError{verdict: result.Error, reason: "the scenario is invalid"}
	case ctx.Err() != nil:
		return &verdictError{verdict: result.Aborted, reason: err.Error()}
	default:
		return err
	}
}
