package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/explore"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/systems"
)

// exploreFailedError is an exploration that found at least one fault breaking a check:
// exit code 1, like a failed run, so a nightly job can gate on it.
type exploreFailedError struct {
	n   int
	dir string
}

func (e *exploreFailedError) Error() string {
	return fmt.Sprintf("explore found %d failure(s) (see %s)", e.n, filepath.Join(e.dir, explore.ReportMarkdown))
}

// ExitCode maps found failures to exit 1.
func (e *exploreFailedError) ExitCode() int { return result.ExitFailed }

func newExploreCmd() *cobra.Command {
	var (
		spec    explore.Spec
		seed    int64
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "explore SCENARIO",
		Short: "Search the fault space under the scenario's load and report which faults break its checks",
		Long: "Explore starts the scenario's system once, runs its load without faults while every link\n" +
			"proxy counts its traffic, and then tries every fault kind (--kinds) on every link between\n" +
			"services that carried traffic and every instance at either end of one, each as a short\n" +
			"trial on the running system judged by the scenario's own checks. --depth 2 then tries\n" +
			"pairs of faults that passed alone, in a seeded order. --budget stops the search cleanly.\n" +
			"Every failure is written as a minimal scenario (only that fault) and verified by running\n" +
			"it once. explore.json, explore.md and explore.html (a heat map) go to --dir. Exit 1 when\n" +
			"any fault broke a check, 2 when the scenario does not pass without faults.",
		Example: "  faultline explore scenarios/baseline.yaml --depth 1\n" +
			"  faultline explore scenarios/baseline.yaml --design designs/no-breaker.yaml --budget 5m",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("explore takes one scenario file, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.File = args[0]
			if _, err := os.Stat(spec.File); err != nil {
				return usagef("explore: %v", err)
			}
			if spec.Depth != 1 && spec.Depth != 2 {
				return usagef("explore: --depth %d: want 1 or 2", spec.Depth)
			}
			if err := explore.ValidateKinds(spec.Kinds); err != nil {
				return usagef("explore: %v", err)
			}
			if err := spec.Shape.Validate(spec.Kinds); err != nil {
				return usagef("explore: %v", err)
			}
			if cmd.Flags().Changed("seed") {
				spec.Seed = &seed
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			spec.SystemFor = systems.For
			spec.Progress = func(line string) { fmt.Fprintln(out, line) }
			if verbose {
				spec.Harness = append(spec.Harness, harness.WithLogger(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))))
			}
			rep, err := explore.Explore(ctx, spec)
			if rep != nil && rep.Dir != "" && len(rep.Trials) > 0 {
				fmt.Fprint(out, "\n"+rep.Summary())
				fmt.Fprintf(out, "matrix: %s, %s, %s\n", filepath.Join(rep.Dir, explore.ReportMarkdown),
					filepath.Join(rep.Dir, explore.ReportJSON), filepath.Join(rep.Dir, explore.ReportHTML))
			}
			var be *explore.BaselineError
			switch {
			case ctx.Err() != nil:
				return &verdictError{verdict: result.Aborted, reason: "explore interrupted; what was covered is in the report"}
			case errors.As(err, &be):
				return &verdictError{verdict: result.Invalid, reason: be.Error()}
			case err != nil:
				return err
			}
			if n := len(rep.Failures()); n > 0 {
				return &exploreFailedError{n: n, dir: rep.Dir}
			}
			fmt.Fprintln(out, "explore found no failure")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&spec.Budget, "budget", explore.DefaultBudget, "bound on the search; a trial that would not end within it is not started")
	fl.IntVar(&spec.Depth, "depth", 1, "1: single faults; 2: then pairs of faults that passed alone")
	fl.StringSliceVar(&spec.Kinds, "kinds", explore.DefaultKinds, "fault kinds to try")
	fl.StringVar(&spec.Dir, "dir", "", "exploration directory (default .faultline/explore/<UTC time>-<scenario>)")
	fl.Int64Var(&seed, "seed", 0, "seed instead of the scenario's (trial n runs with seed + n)")
	fl.StringVar(&spec.Design, "design", "", "design file instead of the scenario's system.design")
	fl.IntVar(&spec.MaxRepros, "max-repros", 0, "verify at most this many failures by running their minimal scenario (0: all)")
	fl.DurationVar(&spec.Shape.Before, "before", explore.DefaultShape.Before, "load before each trial's fault (its steady state)")
	fl.DurationVar(&spec.Shape.Hold, "hold", explore.DefaultShape.Hold, "how long each trial's fault holds")
	fl.DurationVar(&spec.Shape.After, "after", explore.DefaultShape.After, "load after each trial's heal (the steady state must be back)")
	fl.DurationVar(&spec.Settle, "settle", explore.DefaultSettle, "bound on the wait for the system to be whole after a trial before it is restarted")
	fl.BoolVar(&verbose, "verbose", false, "log the system's start and the runs to stderr")
	return cmd
}
