package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/runtime/kubernetes"
)

func newSignalCmd() *cobra.Command {
	var exe string
	var serve bool
	cmd := &cobra.Command{
		Use:    "signal --exe PATH (KILL|STOP|CONT|TERM|HOLD|RELEASE | --serve)",
		Short:  "Signal the component of this pod (run inside a pod by the kubernetes runtime's process faults)",
		Hidden: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if serve {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if exe == "" {
				return usagef("signal: --exe is required")
			}
			hold := os.Getenv(kubernetes.HoldEnv)
			if serve {
				return kubernetes.ServeSignals(cmd.InOrStdin(), cmd.OutOrStdout(), "/proc", exe, hold)
			}
			did, err := kubernetes.Act("/proc", exe, hold, args[0])
			if err != nil {
				return fmt.Errorf("signal: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), did)
			return nil
		},
	}
	cmd.Flags().StringVar(&exe, "exe", "", "the component's executable, as its command line names it")
	cmd.Flags().BoolVar(&serve, "serve", false, "read signal names from stdin, one per line, and answer each on stdout")
	return cmd
}
