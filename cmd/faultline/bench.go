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

	"github.com/faultline-dev/faultline/runtime/docker"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/system"
)

func newBenchCmd() *cobra.Command {
	bench := &cobra.Command{Use: "bench", Short: "Measure the harness itself"}
	var (
		f    systemFlags
		rf   runtimeFlags
		runs int
		cold bool
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
			if err := rf.validate(); err != nil {
				return err
			}
			if rf.keepData {
				return usagef("bench startup: --keep-data is not measured (every docker start begins with empty volumes)")
			}
			if cold && (rf.runtime != runtimeDocker || rf.image != "") {
				return usagef("bench startup: --cold measures the image build and needs --runtime docker without --image")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if rf.runtime == runtimeDocker {
				return benchDockerStartup(ctx, cmd.OutOrStdout(), spec, rf.image, runs, cold)
			}
			return benchStartup(ctx, cmd.OutOrStdout(), spec, runs)
		},
	}
	f.register(startup, ".faultline/bench")
	rf.register(startup)
	startup.Flags().IntVar(&runs, "runs", 5, "measured starts (after one warm-up start)")
	startup.Flags().BoolVar(&cold, "cold", false, "docker: first remove the image of the current binary and time one start including the image build")
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

// benchDockerStartup measures what `faultline up --runtime docker` costs: the image
// lookup (or, with cold, the build after removing the image) plus the containers' start
// until every /readyz answers. Each start creates a network and empty volumes, and Stop
// removes them, so every run is the same.
func benchDockerStartup(ctx context.Context, out io.Writer, spec system.Spec, image string, runs int, cold bool) error {
	build := func() (string, time.Duration, error) {
		if image != "" {
			return image, 0, nil
		}
		began := time.Now()
		tag, err := docker.BuildImage(ctx)
		return tag, time.Since(began), err
	}
	once := func() (total, img time.Duration, err error) {
		began := time.Now()
		tag, img, err := build()
		if err != nil {
			return 0, 0, err
		}
		sys, err := system.StartDocker(ctx, spec, system.Docker{Image: tag})
		if err != nil {
			return 0, 0, err
		}
		total = time.Since(began)
		return total, img, stopSystem(sys)
	}
	if cold {
		tag, _, err := build()
		if err != nil {
			return fmt.Errorf("bench startup: %w", err)
		}
		if err := docker.RemoveImage(ctx, tag); err != nil {
			return fmt.Errorf("bench startup: %w", err)
		}
		total, img, err := once()
		if err != nil {
			return fmt.Errorf("bench startup cold: %w", err)
		}
		fmt.Fprintf(out, "cold start (image %s built in %s): ready in %s\n", tag, img.Round(time.Millisecond), total.Round(time.Millisecond))
	} else {
		fmt.Fprintln(out, "warm-up start (builds the image if the binary changed) ...")
		if _, _, err := once(); err != nil {
			return fmt.Errorf("bench startup: %w", err)
		}
	}
	var ds []time.Duration
	for i := range runs {
		total, img, err := once()
		if err != nil {
			return fmt.Errorf("bench startup run %d: %w", i+1, err)
		}
		fmt.Fprintf(out, "run %d: ready in %s (image lookup %s)\n", i+1, total.Round(time.Millisecond), img.Round(time.Millisecond))
		ds = append(ds, total)
	}
	slices.Sort(ds)
	fmt.Fprintf(out, "docker startup, image cached, over %d runs: median %s  p90 %s  min %s  max %s\n", runs,
		system.Percentile(ds, 50).Round(time.Millisecond), system.Percentile(ds, 90).Round(time.Millisecond),
		ds[0].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	return nil
}
