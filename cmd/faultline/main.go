// Command faultline is the thin CLI over the faultline packages: it maps flags to options
// and errors to exit codes, and nothing else.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime/kubernetes"
)

// usageError marks a problem with how the command was called (bad flag, bad value).
type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() }
func (u *usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// exitCode maps an error to the process exit code (result.Exit*, as documented in
// docs/ARCHITECTURE.md; only main maps errors to them): a run's verdict carries its own
// code (0 passed, 1 failed, 2 invalid, 4 aborted); usage and harness errors are 3.
func exitCode(err error) int {
	var ue *usageError
	var coded interface{ ExitCode() int } // a run's verdict (run.go)
	switch {
	case err == nil:
		return result.ExitPassed
	case errors.As(err, &coded):
		return coded.ExitCode()
	case errors.As(err, &ue):
		return result.ExitError
	default:
		return result.ExitError
	}
}

func main() {
	// In a pod of the kubernetes runtime, a crashed component started again by the kubelet
	// waits here until the crash is healed; the signaler that heals it must not.
	if f := os.Getenv(kubernetes.HoldEnv); f != "" && (len(os.Args) < 2 || os.Args[1] != kubernetes.SignalCommand) {
		kubernetes.WaitHold(f)
	}
	root := newRoot()
	err := root.Execute()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultline:", err)
	}
	os.Exit(exitCode(err))
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "faultline",
		Short: "Chaos and resilience testing harness with a reference microservice system",
		Long: "Faultline runs a reference merchant/order/product system (gateway, registry, broker)\n" +
			"as local processes and injects faults into it to check that breakers, failover and\n" +
			"eventual consistency hold.",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Every command first heals what a killed run left behind (clean.go).
		PersistentPreRunE: healLeftovers,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	root.AddCommand(newUpCmd(), newTokenCmd(), newServeCmd(), newVersionCmd(), newBenchCmd(), newDemoCmd())
	root.AddCommand(newRunCmd(), newSuiteCmd(), newValidateCmd(), newSchemaCmd())
	root.AddCommand(newCleanCmd(), newReapCmd(), newSignalCmd())
	root.AddCommand(newCompareCmd(), newReportCmd())
	root.AddCommand(newSoakCmd(), newConsoleCmd(), newImagesCmd(), newExploreCmd())
	return root
}

// noArgs is cobra.NoArgs returning a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
