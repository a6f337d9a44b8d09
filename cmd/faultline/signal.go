package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/runtime/kubernetes"
)

func newSignalCmd() *cobra.Command {
	var exe string
	cmd := &cobra.Command{
		Use:    "signal --exe PATH KILL|STOP|CONT|TERM",
		Short:  "Signal the component of this pod (run inside a pod by the kubernetes runtime's process faults)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig, ok := kubernetes.Signals[strings.ToUpper(args[0])]
			if !ok {
				return usagef("signal: %q is not one of %s", args[0], strings.Join(slices.Sorted(maps.Keys(kubernetes.Signals)), ", "))
			}
			if exe == "" {
				return usagef("signal: --exe is required")
			}
			pids, err := kubernetes.SignalExe("/proc", exe, sig)
			if err != nil {
				return fmt.Errorf("signal: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "signalled", pids)
			return nil
		},
	}
	cmd.Flags().StringVar(&exe, "exe", "", "the component's executable, as its command line names it")
	return cmd
}
