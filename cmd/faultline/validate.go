package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/scenarios"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate DIR|FILE|NAME...",
		Short: "Check scenario files without running them",
		Long: "Validate reports every problem of every file at once, as file:line:col: message\n" +
			"(hint: ...), the way a compiler does. It takes what suite takes: a directory means\n" +
			"its *.yaml files, a name a built-in scenario. Exit code 0 when every file is valid,\n" +
			"3 otherwise.",
		Example: "  faultline validate scenarios/\n  faultline validate scenarios/*.yaml\n  faultline validate baseline",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s needs at least one scenario file or directory", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := scenarioArgs(args)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			bad, problems := 0, 0
			for _, f := range files {
				errs := validateArg(f)
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
				return fmt.Errorf("validate: %d problem(s) in %d of %d file(s)", problems, bad, len(files))
			}
			return nil
		},
	}
}

// validateArg validates one expanded argument: a file, or a built-in scenario by name
// when no such file exists, as run and suite read it.
func validateArg(arg string) []error {
	if _, err := os.Stat(arg); err != nil && !strings.ContainsAny(arg, "/.") {
		sc, err := loadScenario(arg)
		if err != nil {
			return []error{err}
		}
		return sc.Validate(scenarios.SystemShape{})
	}
	return scenarios.ValidateFile(arg, scenarios.SystemShape{})
}
