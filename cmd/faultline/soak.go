package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/soak"
)

// soakFailedError is a soak whose processes grew: exit code 1, like a failed check.
type soakFailedError struct{ dir string }

func (e *soakFailedError) Error() string {
	return "soak failed: a process's memory or goroutines grew (see " + filepath.Join(e.dir, soak.SoakFile) + ")"
}

// ExitCode maps a failed soak to exit 1.
func (e *soakFailedError) ExitCode() int { return result.ExitFailed }

// soakErr makes a soak cut short by Ctrl-C or SIGTERM exit 4 (aborted), as a run does,
// instead of 3, which would blame the harness for the interruption.
func soakErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &verdictError{verdict: result.Aborted, reason: err.Error()}
	}
	return err
}

func newSoakCmd() *cobra.Command {
	var (
		spec    soak.SoakSpec
		dir     string
		design  string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Cycle the catalog's faults under load for --duration and check no process's memory or goroutines grow",
		Long: "Soak starts the reference system with a fault proxy on every edge, sends a constant\n" +
			"load for --duration while injecting and healing every distinct fault of the built-in\n" +
			"catalog one after the other, and samples every process's resident memory and\n" +
			"goroutines. It compares a window right after the warm-up with the last window of the\n" +
			"soak (both with load and without faults) and exits 1 when any process's RSS grew more\n" +
			"than --max-growth or its goroutines grew. The samples go to soak.json.",
		Example: "  faultline soak --duration 10m\n  faultline soak --duration 2m --rate 60",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec.DesignFile = design
			if errs := spec.Validate(); len(errs) > 0 {
				return usagef("soak: %v", errs)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			opts := []harness.Option{harness.WithDir(dir)}
			if verbose {
				opts = append(opts, harness.WithLogger(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))))
			}
			rep, err := soak.Soak(ctx, spec, opts...)
			if err != nil {
				return soakErr(ctx, err)
			}
			out := cmd.OutOrStdout()
			if err := rep.WriteTable(out); err != nil {
				return err
			}
			fmt.Fprintf(out, "samples: %s\n", filepath.Join(rep.Dir, soak.SoakFile))
			if !rep.Passed() {
				return &soakFailedError{dir: rep.Dir}
			}
			fmt.Fprintln(out, "soak passed")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&spec.Duration, "duration", 10*time.Minute, "how long the load runs")
	fl.DurationVar(&spec.WarmUp, "warmup", 0, "warm-up before the start window (default: a fifth of --duration)")
	fl.DurationVar(&spec.Window, "window", 0, "length of the start and end windows (default: a tenth of --duration, 10s..60s)")
	fl.IntVar(&spec.Rate, "rate", soak.DefaultSoakRate, "constant load in requests per second")
	fl.Float64Var(&spec.MaxRSSGrowth, "max-growth", soak.DefaultMaxRSSGrowth, "largest allowed RSS growth, as a fraction")
	fl.StringVar(&dir, "dir", "", "soak directory (default .faultline/runs/<UTC time>-soak)")
	fl.StringVar(&design, "design", "", "design YAML (default: the built-in resilient design)")
	fl.BoolVar(&verbose, "verbose", false, "log the system's start and the faults to stderr")
	return cmd
}
