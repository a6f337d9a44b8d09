package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/runtime/docker"
	"github.com/faultline-dev/faultline/runtime/images"
)

func newImagesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Faultline's container images (the faultline binary and the Toxiproxy server, each FROM scratch)",
		Args:  noArgs,
	}
	cmd.AddCommand(newImagesPushCmd())
	return cmd
}

func newImagesPushCmd() *cobra.Command {
	var (
		reg      string
		source   string
		insecure bool
	)
	cmd := &cobra.Command{
		Use:   "push --registry HOST[:PORT][/PATH]",
		Short: "Build Faultline's images and push them to a registry a cluster pulls from",
		Long: "Builds the static faultline and Toxiproxy binaries from the source tree and pushes each\n" +
			"as an OCI image FROM scratch to REGISTRY/<name>:<binary hash>, without a container engine.\n" +
			"Prints each reference with its digest. Credentials come from the Docker config\n" +
			"(~/.docker/config.json), as for any registry client.",
		Example: "  faultline images push --registry registry.example:5000/chaos\n" +
			"  faultline images push --registry 127.0.0.1:5000/faultline --insecure",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if reg == "" {
				return usagef("%s: --registry is empty (HOST[:PORT][/PATH] of the registry the cluster pulls from)", cmd.CommandPath())
			}
			opts := []images.PushOption{
				images.WithModuleRoot(source), images.WithBuildLog(cmd.ErrOrStderr()),
				images.WithLabels(map[string]string{docker.LabelManaged: "true"}),
			}
			if insecure {
				opts = append(opts, images.Insecure())
			}
			pushed, err := images.Push(cmd.Context(), reg, images.Recipes(), opts...)
			for _, p := range pushed {
				fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", p.Ref, p.Digest)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&reg, "registry", "", "registry and path to push to: HOST[:PORT][/PATH]")
	cmd.Flags().StringVar(&source, "source", "", "the faultline source tree to build from (default: the module of the working directory)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "talk plain HTTP to the registry (one on loopback or a private network is reached over HTTP anyway)")
	return cmd
}
