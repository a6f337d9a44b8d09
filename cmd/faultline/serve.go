package main

import (
	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/reference-services/serve"
)

func newServeCmd() *cobra.Command {
	var cfg string
	cmd := &cobra.Command{
		Use:    "serve --config FILE",
		Short:  "Run one component of the reference system (started by the harness)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg == "" {
				return usagef("serve: --config is required")
			}
			return serve.Main(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&cfg, "config", "", "component config JSON written by the harness")
	return cmd
}
