package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/system"
)

func newBenchCmd() *cobra.Command {
	bench := &cobra.Command{Use: "bench", Short: "Measure the harness itself"}
	var (
		f    systemFlags
		runs int
	)
	startup := &cobra.Command{
		Use:   "startup",
		Short: "Start and stop the default system --runs times from a warm data dir; print the median time to ready",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runs < 1 {
				return usagef("bench startup: --runs must be >= 1")
			}
			spec, err := f.spec()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return benchStartup(ctx, cmd.OutOrStdout(), spec, runs)
		},
	}
	f.register(startup, ".faultline/bench")
	startup.Flags().IntVar(&runs, "runs", 5, "measured starts (after one warm-up start)")
	bench.AddCommand(startup)
	return bench
}

func benchStartup(ctx context.Context, out io.Writer, spec system.Spec, runs int) error {
	once := func() (time.Duration, error) {
		rt := local.New()
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), system.DefaultStopTimeout)
			defer cancel()
			_ = rt.Close(cctx)
		}()
		sys, err := system.Start(ctx, rt, spec)
		if err != nil {
			return 0, err
		}
		d := sys.ReadyDuration()
		return d, stopSystem(sys)
	}
	fmt.Fprintf(out, "warm-up start in %s ...\n", spec.Dir)
	if _, err := once(); err != nil {
		return fmt.Errorf("bench startup: %w", err)
	}
	var ds []time.Duration
	for i := range runs {
		d, err := once()
		if err != nil {
			return fmt.Errorf("bench startup run %d: %w", i+1, err)
		}
		fmt.Fprintf(out, "run %d: ready in %s\n", i+1, d.Round(time.Millisecond))
		ds = append(ds, d)
	}
	slices.Sort(ds)
	fmt.Fprintf(out, "startup over %d runs: median %s  p90 %s  min %s  max %s\n", runs,
		system.Percentile(ds, 50).Round(time.Millisecond), system.Percentile(ds, 90).Round(time.Millisecond),
		ds[0].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	return nil
}
