package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/bench"
	"github.com/faultline-dev/faultline/runtime/docker"
	"github.com/faultline-dev/faultline/system"
	"github.com/faultline-dev/faultline/system/containers"
)

func newBenchCmd() *cobra.Command {
	bench := &cobra.Command{Use: "bench", Short: "Measure the harness itself"}
	var (
		f       systemFlags
		rf      runtimeFlags
		runs    int
		cold    bool
		verbose bool
		debug   bool
	)
	startup := &cobra.Command{
		Use:   "startup",
		Short: "Start and stop the default system --runs times from a warm data dir; print the median time to ready (docker: and the engine's floor for as many bare containers)",
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
				var opts []system.Option
				if debug {
					// The runtime's engine calls, timed, for where a container's start goes.
					opts = append(opts, system.WithLogger(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelDebug}))))
				}
				return benchDockerStartup(ctx, cmd.OutOrStdout(), spec, rf.image, runs, cold, verbose, opts...)
			}
			return benchStartup(ctx, cmd.OutOrStdout(), spec, rf, runs, verbose)
		},
	}
	f.register(startup, ".faultline/bench")
	rf.register(startup)
	startup.Flags().IntVar(&runs, "runs", 5, "measured starts (after one warm-up start)")
	startup.Flags().BoolVarP(&verbose, "verbose", "v", false, "print where the time of the median run went: each phase, and when each component was started and found ready")
	startup.Flags().BoolVar(&debug, "debug", false, "docker: log every engine call of the starts, timed, on stderr")
	startup.Flags().BoolVar(&cold, "cold", false, "docker: first remove the image of the current binary and time one start including the image build")
	bench.AddCommand(startup)
	return bench
}

// benchRun is one measured start.
type benchRun struct {
	took    time.Duration
	startup system.Startup
}

// report prints the median, p90, min and max of runs and, with verbose, the profile of the
// median run (what a reader compares before and after a change); it returns the median.
func report(out io.Writer, what string, runs []benchRun, verbose bool) time.Duration {
	slices.SortFunc(runs, func(a, b benchRun) int { return int(a.took - b.took) })
	ds := make([]time.Duration, len(runs))
	for i, r := range runs {
		ds[i] = r.took
	}
	med := system.Percentile(ds, 50)
	fmt.Fprintf(out, "%s over %d runs: median %s  p90 %s  min %s  max %s\n", what, len(runs),
		med.Round(time.Millisecond), system.Percentile(ds, 90).Round(time.Millisecond),
		ds[0].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	if !verbose {
		return med
	}
	for _, r := range runs {
		if r.took == med {
			fmt.Fprintf(out, "median run (ms from the start):\n%s", r.startup)
			break
		}
	}
	return med
}

// benchStartup times starts of spec on the local or kubernetes runtime as up makes them:
// on kubernetes each start is a run of its own (namespace, Lease, reaper, pods ready),
// recorded in the undo journal first so that an interrupted bench leaves nothing behind.
func benchStartup(ctx context.Context, out io.Writer, spec system.Spec, rf runtimeFlags, runs int, verbose bool) error {
	once := func() (benchRun, error) {
		if rf.runtime == runtimeKubernetes {
			j, err := kubeJournal(spec.Dir, rf.kube)
			if err != nil {
				return benchRun{}, err
			}
			defer func() {
				cctx, cancel := context.WithTimeout(context.Background(), system.DefaultStopTimeout)
				defer cancel()
				_ = j.Close(cctx)
			}()
			rf.kube.runID = j.Record().RunID
		}
		sys, release, err := rf.start(ctx, spec, slog.New(slog.DiscardHandler))
		defer release()
		if err != nil {
			return benchRun{}, err
		}
		r := benchRun{took: sys.ReadyDuration(), startup: sys.Startup()}
		return r, stopSystem(sys)
	}
	fmt.Fprintf(out, "warm-up start in %s ...\n", spec.Dir)
	if _, err := once(); err != nil {
		return fmt.Errorf("bench startup: %w", err)
	}
	var rs []benchRun
	for i := range runs {
		r, err := once()
		if err != nil {
			return fmt.Errorf("bench startup run %d: %w", i+1, err)
		}
		fmt.Fprintf(out, "run %d: ready in %s\n", i+1, r.took.Round(time.Millisecond))
		rs = append(rs, r)
	}
	report(out, rf.runtime+" startup", rs, verbose)
	return nil
}

// benchDockerStartup measures what `faultline up --runtime docker` costs: the image
// lookup (or, with cold, the build after removing the image) plus the containers' start
// until every /readyz answers. Each start creates a network and empty volumes, and Stop
// removes them, so every run is the same.
func benchDockerStartup(ctx context.Context, out io.Writer, spec system.Spec, image string, runs int, cold, verbose bool, opts ...system.Option) error {
	once := func() (benchRun, error) {
		// containers.StartDocker looks the image up (or builds it) itself, as `faultline up`
		// does, and counts that into its start.
		sys, err := containers.StartDocker(ctx, spec, containers.Docker{Image: image}, opts...)
		if err != nil {
			return benchRun{}, err
		}
		r := benchRun{took: sys.ReadyDuration(), startup: sys.Startup()}
		return r, stopSystem(sys)
	}
	if cold {
		tag, err := docker.BuildImage(ctx)
		if err != nil {
			return fmt.Errorf("bench startup: %w", err)
		}
		if err := docker.RemoveImage(ctx, tag); err != nil {
			return fmt.Errorf("bench startup: %w", err)
		}
		r, err := once()
		if err != nil {
			return fmt.Errorf("bench startup cold: %w", err)
		}
		fmt.Fprintf(out, "cold start (image %s built in %s): ready in %s\n", tag, phase(r.startup, "image").Round(time.Millisecond), r.took.Round(time.Millisecond))
	} else {
		fmt.Fprintln(out, "warm-up start (builds the image if the binary changed) ...")
		if _, err := once(); err != nil {
			return fmt.Errorf("bench startup: %w", err)
		}
	}
	var rs []benchRun
	for i := range runs {
		r, err := once()
		if err != nil {
			return fmt.Errorf("bench startup run %d: %w", i+1, err)
		}
		fmt.Fprintf(out, "run %d: ready in %s (image lookup %s)\n", i+1, r.took.Round(time.Millisecond), phase(r.startup, "image").Round(time.Millisecond))
		rs = append(rs, r)
	}
	med := report(out, "docker startup, image cached,", rs, verbose)
	// The figure is read against what the engine needs for as many bare containers,
	// measured right after the runs, under the same load.
	if image == "" {
		tag, err := docker.BuildImage(ctx)
		if err != nil {
			return fmt.Errorf("bench startup: %w", err)
		}
		image = tag
	}
	floor, err := bench.EngineFloor(ctx, image, len(rs[0].startup.Components))
	if floor.All > 0 {
		fmt.Fprintf(out, "%s; the median is %s\n", floor, floor.Above(med))
	}
	if err != nil {
		return fmt.Errorf("bench startup: %w", err)
	}
	return nil
}

// phase is how long the named phase of a start took, 0 when it did not run.
func phase(s system.Startup, name string) time.Duration {
	for _, p := range s.Phases {
		if p.Name == name {
			return p.Took
		}
	}
	return 0
}
