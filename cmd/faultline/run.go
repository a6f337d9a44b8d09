package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/reports"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/systems"
)

// verdictError carries a run's verdict to main as its exit code; the verdict has been
// printed already, so the message only repeats it in one line.
type verdictError struct {
	verdict result.Verdict
	reason  string
}

func (e *verdictError) Error() string {
	if e.reason == "" {
		return "verdict " + string(e.verdict)
	}
	return "verdict " + string(e.verdict) + ": " + e.reason
}

// ExitCode is the verdict's exit code (passed 0, failed 1, invalid 2, error 3, aborted 4).
func (e *verdictError) ExitCode() int { return e.verdict.ExitCode() }

// verdictErr is nil for a passed run and a verdictError otherwise.
func verdictErr(v result.Verdict, reason string) error {
	if v == result.Passed {
		return nil
	}
	return &verdictError{verdict: v, reason: reason}
}

// loadScenario reads a scenario file, or a built-in scenario by name when no such file
// exists. Problems in the file are left for the harness (or validate) to report with
// their positions; only a file that cannot be read at all is an error here.
func loadScenario(arg string) (*scenarios.Scenario, error) {
	if _, err := os.Stat(arg); err != nil && !strings.ContainsAny(arg, "/.") {
		sc, berr := scenarios.Builtin(arg)
		if sc == nil {
			return nil, usagef("load scenario %q: no such file, and %v", arg, berr)
		}
		return sc, nil
	}
	sc, err := scenarios.Load(arg)
	if sc == nil {
		return nil, usagef("load scenario: %v", err)
	}
	return sc, nil
}

func newRunCmd() *cobra.Command {
	var (
		dir     string
		seed    int64
		jsonOut bool
		rf      runRuntimeFlags
	)
	cmd := &cobra.Command{
		Use:   "run FILE|NAME",
		Short: "Run one scenario against the reference system and print its verdict",
		Long: "Run starts the reference system (local processes, or containers with --runtime docker)\n" +
			"with a fault proxy on every edge,\n" +
			"sends the scenario's seeded load while its faults are injected and healed, checks\n" +
			"the expectations and writes result.json and history.jsonl into the run directory.\n" +
			"Exit codes: 0 passed, 1 a check failed, 2 invalid run, 3 error, 4 aborted.",
		Example: "  faultline run scenarios/dependency-latency.yaml\n" +
			"  faultline run baseline --seed 7 --json\n" +
			"  faultline run replica-crash --runtime docker",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("%s takes exactly one scenario, got %d", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := loadScenario(args[0])
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rtOpts, err := rf.options(ctx, cmd.ErrOrStderr(), sc)
			if err != nil {
				return err
			}
			res, err := runOne(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), sc, dir, jsonOut, append(seedOpt(cmd, seed), rtOpts...)...)
			if err != nil {
				return err
			}
			return verdictErr(res.Verdict, res.Reason)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "run directory (default "+harness.DefaultRunsDir+"/<UTC time>-<scenario>)")
	cmd.Flags().Int64Var(&seed, "seed", 0, "override the scenario's seed")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print result.json to stdout instead of a summary")
	rf.register(cmd)
	return cmd
}

// seedOpt overrides the scenario's seed only when --seed was given.
func seedOpt(cmd *cobra.Command, seed int64) []harness.Option {
	if cmd.Flags().Changed("seed") {
		return []harness.Option{harness.WithSeed(seed)}
	}
	return nil
}

// runOne runs sc with a live progress line on errOut and prints the outcome on out. It
// returns an error only when the scenario was refused before it ran.
func runOne(ctx context.Context, out, errOut io.Writer, sc *scenarios.Scenario, dir string, jsonOut bool, extra ...harness.Option) (*result.Run, error) {
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The plan's shape first, so what the file means is visible before it is sent.
	fmt.Fprintf(errOut, "%s load: %s\n", sc.Name, harness.LoadPlan(sc.Load))
	pp := newProgressPrinter(errOut, sc.Name)
	opts := append([]harness.Option{harness.WithSystemFor(systems.For), harness.WithLogger(log), harness.WithProgress(pp.print)}, extra...)
	if dir != "" {
		opts = append(opts, harness.WithDir(dir))
	}
	res, err := harness.Run(ctx, sc, opts...)
	pp.done()
	var verr *harness.ValidationError
	if errors.As(err, &verr) {
		for _, e := range verr.Errs {
			fmt.Fprintln(errOut, e)
		}
		return res, &verdictError{verdict: result.Error, reason: fmt.Sprintf("%s has %d problem(s)", sc.File, len(verr.Errs))}
	}
	// Reports are written here, after the harness is done, so that the harness stays free
	// of presentation and `faultline report` can render the same files later.
	var paths *reports.Paths
	if res.RunDir != "" {
		if _, serr := os.Stat(filepath.Join(res.RunDir, harness.ResultFile)); serr == nil {
			p, rerr := writeReports(context.WithoutCancel(ctx), res.RunDir, res, storedHistory(filepath.Join(res.RunDir, harness.ResultFile), res))
			if rerr != nil {
				fmt.Fprintf(errOut, "faultline: %v\n", rerr)
			} else {
				paths = &p
			}
		}
	}
	if jsonOut {
		if werr := res.Write(out); werr != nil {
			return res, werr
		}
		return res, nil
	}
	printResult(out, res, err, paths)
	return res, nil
}

// printResult prints what was measured (load, faults' effects), then, as the final lines
// a terminal or CI log shows, the verdict, the failed checks with figure and threshold, and
// where the records and reports are.
func printResult(w io.Writer, res *result.Run, err error, paths *reports.Paths) {
	if l := res.Load; l.Requests > 0 {
		fmt.Fprintf(w, "load: %d requests, %.1f/s of %.1f/s planned, %d errors\n", l.Requests, l.AchievedRate, l.PlannedRate, l.Errors)
	}
	for _, f := range res.Faults {
		switch e := f.Effect; {
		case e == nil:
			fmt.Fprintf(w, "fault %s (%s): no measurement\n", f.Name, f.Type)
		default:
			fmt.Fprintf(w, "fault %s (%s): landed=%t measured %.4g %s (configured %.4g)\n", f.Name, f.Type, e.Landed, e.Measured, e.Unit, e.Configured)
		}
	}
	fmt.Fprintf(w, "%s: %s (exit %d)\n", res.Scenario, strings.ToUpper(string(res.Verdict)), res.Verdict.ExitCode())
	if res.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", res.Reason)
	}
	if err != nil && !strings.Contains(res.Reason, err.Error()) {
		fmt.Fprintf(w, "  error: %v\n", err)
	}
	if res.Hint != "" {
		fmt.Fprintf(w, "  hint: %s\n", res.Hint)
	}
	if ef := res.ExpectedFailure; ef != nil {
		fmt.Fprintf(w, "  expected failure of %s observed: %t — %s\n", ef.Check, ef.Observed, ef.Reason)
	}
	passed := 0
	for _, c := range res.Checks {
		if c.Passed {
			passed++
		}
	}
	if len(res.Checks) > 0 {
		fmt.Fprintf(w, "  checks: %d of %d passed\n", passed, len(res.Checks))
	}
	for _, c := range res.FailedChecks() {
		state := "FAILED"
		if c.Skipped {
			state = "SKIPPED"
		}
		fmt.Fprintf(w, "    %s %s: %s — %s\n", state, c.Name, failedFigure(c), c.Message)
	}
	if res.RunDir != "" {
		fmt.Fprintf(w, "  result:  %s\n", filepath.Join(res.RunDir, harness.ResultFile))
		if res.History != "" {
			fmt.Fprintf(w, "  history: %s\n", filepath.Join(res.RunDir, res.History))
		}
	}
	if paths != nil {
		printPaths(w, *paths)
	}
}

// failedFigure shows how a check that did not pass missed its bound: nothing for a check
// that could not be evaluated, and no number for a moment that never came.
func failedFigure(c result.Check) string {
	switch {
	case c.Skipped:
		return "not evaluated"
	case c.Never:
		return fmt.Sprintf("never observed (want %s %.4g %s)", c.Op, c.Threshold, c.Unit)
	}
	return fmt.Sprintf("%.4g %s %s %.4g %s", c.Figure, c.Unit, negate(c.Op), c.Threshold, c.Unit)
}

// negate shows how a failed figure relates to its bound ("<=" failed means ">").
func negate(op string) string {
	switch op {
	case "<=":
		return ">"
	case ">=":
		return "<"
	case "==":
		return "!="
	case "<":
		return ">="
	case ">":
		return "<="
	}
	return "vs"
}

// progressPrinter shows harness progress: one line rewritten in place on a terminal,
// plain lines (at phase changes and every few seconds) otherwise.
type progressPrinter struct {
	w        io.Writer
	name     string
	tty      bool
	last     string
	lastLine time.Time
	drawn    bool
}

func newProgressPrinter(w io.Writer, name string) *progressPrinter {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressPrinter{w: w, name: name, tty: tty}
}

func (p *progressPrinter) print(pr harness.Progress) {
	line := fmt.Sprintf("%s %-24s %6.1fs %6.1f req/s %6d requests %5d errors", p.name, pr.Phase, pr.Elapsed.Seconds(), pr.RPS, pr.Requests, pr.Errors)
	if len(pr.ActiveFaults) > 0 {
		line += "  faults: " + strings.Join(pr.ActiveFaults, ",")
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
		return
	}
	if pr.Phase != p.last || time.Since(p.lastLine) >= 3*time.Second {
		fmt.Fprintln(p.w, line)
		p.last, p.lastLine = pr.Phase, time.Now()
	}
}

func (p *progressPrinter) done() {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// runRuntimeFlags choose the runtime of run, suite and compare; empty keeps each
// scenario's own system.runtime (local when it names none).
type runRuntimeFlags struct {
	runtime string
	image   string
	kube    kubeFlags
}

func (f *runRuntimeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.runtime, "runtime", "", "where the system runs: local (OS processes), docker (containers, faults through a Toxiproxy container) or kubernetes (a namespace of a cluster, faults through a Toxiproxy pod); default: the scenario's system.runtime")
	fl.StringVar(&f.image, "image", "", "docker, kubernetes: image holding the faultline binary (docker default: built from the source tree, reused while the binary is unchanged; kubernetes default: this tree's image imported into the nodes)")
	f.kube.register(cmd)
}

// options validates the flags and, for docker, builds the images once so that every run
// of a suite or comparison reuses them.
func (f *runRuntimeFlags) options(ctx context.Context, errOut io.Writer, scs ...*scenarios.Scenario) ([]harness.Option, error) {
	if err := f.kube.checkRegistry(f.runtime, f.image); err != nil {
		return nil, err
	}
	switch f.runtime {
	case "":
		// Each scenario's own system.runtime decides; --image serves those on docker.
		if f.image != "" {
			return []harness.Option{harness.WithDocker(harness.Docker{Image: f.image})}, nil
		}
		return nil, nil
	case runtimeLocal:
		if f.image != "" {
			return nil, usagef("--image needs --runtime docker (or scenarios with system.runtime: docker)")
		}
		return []harness.Option{harness.WithRuntime(runtimeLocal)}, nil
	case runtimeDocker:
		fmt.Fprintln(errOut, "faultline: building the docker images (reused while the binaries are unchanged) ...")
		reference := false // a user's topology needs faultline's image only for its reaper
		for _, sc := range scs {
			reference = reference || sc == nil || !sc.HasTopology()
		}
		d, err := harness.DockerImages(ctx, harness.Docker{Image: f.image}, reference || len(scs) == 0)
		if err != nil {
			return nil, fmt.Errorf("prepare docker runtime: %w", err)
		}
		return []harness.Option{harness.WithRuntime(runtimeDocker), harness.WithDocker(d)}, nil
	case runtimeKubernetes:
		if err := f.kube.validate(); err != nil {
			return nil, err
		}
		k, err := harness.KubernetesImages(ctx, f.kube.harness(f.image))
		if err != nil {
			return nil, fmt.Errorf("prepare kubernetes runtime: %w", err)
		}
		return []harness.Option{harness.WithRuntime(runtimeKubernetes), harness.WithKubernetes(k)}, nil
	default:
		return nil, usagef("--runtime %q: want %s, %s or %s", f.runtime, runtimeLocal, runtimeDocker, runtimeKubernetes)
	}
}
