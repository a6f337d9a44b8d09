package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/scenarios"
)

func newValidateCmd() *cobra.Command {
	var rt string
	cmd := &cobra.Command{
		Use:   "validate DIR|FILE|NAME...",
		Short: "Check scenario files without running them",
		Long: "Validate reports every problem of every file at once, as file:line:col: message\n" +
			"(hint: ...), the way a compiler does. It takes what suite takes: a directory means\n" +
			"its *.yaml files, a name a built-in scenario. A fault the runtime cannot carry out\n" +
			"(--runtime, else the scenario's system.runtime, else local) is a problem too, as the\n" +
			"run would refuse it. Exit code 0 when every file is valid, 3 otherwise.",
		Example: "  faultline validate scenarios/\n  faultline validate scenarios/*.yaml\n  faultline validate baseline\n" +
			"  faultline validate pod-delete.yaml --runtime kubernetes",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s needs at least one scenario file or directory", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if rt != "" && !slices.Contains(runtimes, rt) {
				return usagef("--runtime %q: want %s", rt, strings.Join(runtimes, ", "))
			}
			files, err := scenarioArgs(args)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			bad, problems := 0, 0
			for _, f := range files {
				errs := validateArg(f, rt)
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
	cmd.Flags().StringVar(&rt, "runtime", "", "the runtime the scenarios will run on ("+strings.Join(runtimes, ", ")+"): its refused fault kinds are problems; default: each scenario's system.runtime, else local")
	return cmd
}

// validateArg validates one expanded argument: a file, or a built-in scenario by name
// when no such file exists, as run and suite read it, for runtime rt (empty: the
// scenario's own, else local).
func validateArg(arg, rt string) []error {
	var sc *scenarios.Scenario
	if _, err := os.Stat(arg); err != nil && !strings.ContainsAny(arg, "/.") {
		if sc, err = loadScenario(arg); err != nil {
			return []error{err}
		}
	} else if sc, err = scenarios.Load(arg); sc == nil {
		if list, ok := errors.AsType[scenarios.ErrorList](err); ok {
			return list.Errors()
		}
		return []error{err}
	}
	rt = cmp.Or(rt, sc.System.Runtime, runtimeLocal)
	return sc.Validate(scenarios.SystemShape{RefusedFaults: harness.RefusedFaults(rt), Runtime: rt})
}

// runtimes are the values --runtime takes.
var runtimes = []string{runtimeLocal, runtimeDocker, runtimeKubernetes}
