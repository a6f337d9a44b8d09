package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/runtime/docker"
)

func newReapCmd() *cobra.Command {
	var (
		runID, listen string
		grace         time.Duration
	)
	cmd := &cobra.Command{
		Use:    "reap --run-id ID",
		Short:  "Remove a Docker run once its harness is gone (the run's reaper container)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runID == "" {
				return usagef("reap: --run-id is required")
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("reap: %w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			rep, err := docker.Reap(ctx, ln, runID, grace, log)
			var removed []string
			for _, l := range [][]string{rep.Containers, rep.Networks, rep.Volumes} {
				removed = append(removed, l...)
			}
			if len(removed) > 0 {
				log.Info("removed", "run", runID, "what", strings.Join(removed, ", "))
			}
			if ctx.Err() != nil {
				return nil // stopped by a harness that cleans up itself
			}
			return err
		},
	}
	cmd.Flags().StringVar(&runID, "run-id", "", "the run whose labelled containers, network and volumes to remove")
	cmd.Flags().StringVar(&listen, "listen", "0.0.0.0:7474", "where the harness connects (inside the reaper's container)")
	cmd.Flags().DurationVar(&grace, "grace", docker.DefaultReaperGrace, "how long no harness may be connected before the run is removed")
	return cmd
}
