package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); otherwise the VCS
// revision recorded by the go tool is shown.
var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the faultline version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, rev, goVer := version, "", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVer = bi.GoVersion
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = s.Value
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "faultline %s", v)
			if rev != "" {
				fmt.Fprintf(cmd.OutOrStdout(), " (%.12s)", rev)
			}
			fmt.Fprintf(cmd.OutOrStdout(), " %s\n", goVer)
			return nil
		},
	}
}
