package main

import (
	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/scenarios"
)

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of scenario files, for editors",
		Example: "  faultline schema > scenario.schema.json\n" +
			"  # then in a scenario file: # yaml-language-server: $schema=scenario.schema.json",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(scenarios.Schema())
			return err
		},
	}
}
