package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/console"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/systems"
)

// defaultConsoleScenario is the scenario whose system the console starts by default.
const defaultConsoleScenario = "baseline"

func newConsoleCmd() *cobra.Command {
	var (
		dir, addr, rt string
		verbose       bool
	)
	cmd := &cobra.Command{
		Use:   "console [SCENARIO]",
		Short: "Start a scenario's system with a fault proxy on every link and watch and steer it live in the browser",
		Long: "Console starts the system of SCENARIO (default: the built-in baseline's reference system)\n" +
			"with a fault proxy on every link, and serves a page on loopback that shows every\n" +
			"instance, link, circuit breaker and the load live, starts and stops load, and injects\n" +
			"and heals any registered fault kind by hand. It prints the page's URL with a random\n" +
			"access token; requests without it are refused. Ctrl-C heals every fault and stops\n" +
			"every process, like run; a killed console is healed by the next faultline command.",
		Example: "  faultline console\n  faultline console scenarios/cascading-failure-with-breaker.yaml --addr 127.0.0.1:8900",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rt != runtimeLocal {
				return usagef("console: --runtime %q: this console runs the local runtime only", rt)
			}
			if err := console.CheckAddr(addr); err != nil {
				return usagef("console: %v", err)
			}
			name := defaultConsoleScenario
			if len(args) == 1 {
				name = args[0]
			}
			sc, err := loadScenario(name)
			if err != nil {
				return err
			}
			sys := systems.For(sc, "")
			if errs := sys.Validate(sc); len(errs) > 0 {
				return usagef("console: invalid scenario: %v", errors.Join(errs...))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "starting the system of %s ...\n", sc.Name)
			c, err := console.Start(ctx, sys, console.Options{
				Addr: addr, Scenario: sc,
				Harness: []harness.Option{harness.WithDir(dir), harness.WithLogger(log)},
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "run directory: %s\nconsole: %s\npress Ctrl-C to heal everything and stop\n", c.Dir(), c.URL())
			<-ctx.Done()
			fmt.Fprintln(out, "\nhealing every fault and stopping every process ...")
			c.Close(context.WithoutCancel(ctx))
			fmt.Fprintf(out, "stopped; the session's history and result are in %s (faultline report %s renders them)\n", c.Dir(), c.Dir())
			if session := filepath.Join(c.Dir(), console.SessionFile); fileExists(session) {
				fmt.Fprintf(out, "its hand actions as a scenario: %s (faultline run %s replays them)\n", session, session)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", "", "run directory (default .faultline/runs/<UTC time>-console)")
	fl.StringVar(&addr, "addr", console.DefaultAddr, "loopback address to serve the page on")
	fl.StringVar(&rt, "runtime", runtimeLocal, "where components run (this console: local)")
	fl.BoolVar(&verbose, "verbose", false, "log the system's start and every console event to stderr")
	return cmd
}

// fileExists reports whether path is a regular file.
func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
