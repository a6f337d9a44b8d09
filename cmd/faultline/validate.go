package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/scenarios"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check scenario files without running them",
		Long: "Validate reports every problem of every file at once, as file:line:col: message\n" +
			"(hint: ...), the way a compiler does. Exit code 0 when every file is valid, 3 otherwise.",
		Example: "  faultline validate scenarios/*.yaml",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s needs at least one scenario file", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			bad, problems := 0, 0
			for _, f := range args {
				errs := scenarios.ValidateFile(f, scenarios.Topology{})
				if len(errs) == 0 {
					fmt.Fprintf(out, "%s: ok\n", f)
					continue
				}
				bad++
				problems += len(errs)
				for _, e := range errs {
					fmt.Fprintln(out, e)
				}
			}
			if bad > 0 {
				return fmt.Errorf("validate: %d problem(s) in %d of %d file(s)", problems, bad, len(args))
			}
			return nil
		},
	}
}
