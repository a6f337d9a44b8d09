package main

import (
	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/scenarios"
)

func newSchemaCmd() *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of scenario files, for editors (or the scenario reference)",
		Example: "  faultline schema > scenario.schema.json\n" +
			"  # then in a scenario file: # yaml-language-server: $schema=scenario.schema.json\n" +
			"  faultline schema --markdown > docs/SCENARIOS.md",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := scenarios.Schema()
			if markdown {
				out = append(scenarios.Reference(), '\n')
			}
			_, err := cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the scenario reference (docs/SCENARIOS.md), generated from the schema, instead")
	return cmd
}
