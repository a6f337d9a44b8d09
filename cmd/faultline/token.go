package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/system"
)

func newTokenCmd() *cobra.Command {
	var (
		dir     string
		subject string
		ttl     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a bearer token the gateways of the system in --dir accept",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if subject == "" {
				return usagef("token: --subject is empty")
			}
			if ttl <= 0 {
				return usagef("token: --ttl %s is not positive", ttl)
			}
			tok, err := system.IssueToken(dir, subject, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", DefaultDir, "run directory of the system (holds secrets/jwt.key)")
	cmd.Flags().StringVar(&subject, "subject", "demo", "token subject (the client identity the gateway rate-limits by)")
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "token lifetime")
	return cmd
}
