package main

import (
	"context"
	"encoding/json"
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
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/systems"
)

// defaultConsoleScenario is the scenario whose system the console starts by default.
const defaultConsoleScenario = "baseline"

func newConsoleCmd() *cobra.Command {
	var (
		dir, addr, rt, topo string
		image               string
		kube                kubeFlags
		verbose             bool
	)
	cmd := &cobra.Command{
		Use:   "console [SCENARIO|--topology FILE]",
		Short: "Start a scenario's system with a fault proxy on every link and watch and steer it live in the browser",
		Long: "Console starts the system of SCENARIO (default: the built-in baseline's reference system)\n" +
			"with a fault proxy on every link, and serves a page on loopback that shows every\n" +
			"instance, link, circuit breaker and the load live, starts and stops load, and injects\n" +
			"and heals any registered fault kind by hand. It prints the page's URL with a random\n" +
			"access token; requests without it are refused. Ctrl-C heals every fault and stops\n" +
			"every process, like run; a killed console is healed by the next faultline command.\n" +
			"With --topology it starts a user's topology instead (a file holding a topology, or a\n" +
			"scenario with one): its components and links, faulted by hand; load needs a scenario's\n" +
			"targets, so give the scenario itself to put load on it.",
		Example: "  faultline console\n  faultline console scenarios/cascading-failure-with-breaker.yaml --addr 127.0.0.1:8900\n" +
			"  faultline console --topology examples/http-service/scenario.yaml",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := console.CheckAddr(addr); err != nil {
				return usagef("console: %v", err)
			}
			name := defaultConsoleScenario
			if len(args) == 1 {
				name = args[0]
			}
			var (
				sc  *scenarios.Scenario
				err error
			)
			switch {
			case topo != "" && len(args) == 1:
				return usagef("console: give a scenario or --topology FILE, not both")
			case topo != "":
				sc, err = topologyScenario(topo)
			default:
				sc, err = loadScenario(name)
			}
			if err != nil {
				return err
			}
			sys := systems.For(sc, "")
			if errs := sys.Validate(sc); len(errs) > 0 {
				return usagef("console: invalid scenario: %v", errors.Join(errs...))
			}
			if topo != "" {
				sc.Load = scenarios.LoadSpec{}
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
			// The runtime as run takes it: on docker the images are built (or reused) first.
			rf := runRuntimeFlags{runtime: rt, image: image, kube: kube}
			rtOpts, err := rf.options(ctx, cmd.ErrOrStderr(), sc)
			if err != nil {
				return err
			}
			c, err := console.Start(ctx, sys, console.Options{
				Addr: addr, Scenario: sc,
				Harness: append([]harness.Option{harness.WithDir(dir), harness.WithLogger(log)}, rtOpts...),
			})
			if err != nil {
				return err
			}
			// A system on a cluster whose Lease is lost is healed and stopped at once, as up's.
			ctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			stopWatch := harness.WatchLease(ctx, cancel, log, c)
			defer stopWatch()
			fmt.Fprintf(out, "run directory: %s\nconsole: %s\npress Ctrl-C to heal everything and stop\n", c.Dir(), c.URL())
			<-ctx.Done()
			lerr := leaseLost(ctx, "console")
			if lerr != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "\nthe run's Lease on the cluster is lost: healing every fault and stopping every process ...")
			} else {
				fmt.Fprintln(out, "\nhealing every fault and stopping every process ...")
			}
			c.Close(context.WithoutCancel(ctx))
			fmt.Fprintf(out, "stopped; the session's history and result are in %s (faultline report %s renders them)\n", c.Dir(), c.Dir())
			if session := filepath.Join(c.Dir(), console.SessionFile); fileExists(session) {
				fmt.Fprintf(out, "its hand actions as a scenario: %s (faultline run %s replays them)\n", session, session)
			}
			return lerr
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", "", "run directory (default .faultline/runs/<UTC time>-console)")
	fl.StringVar(&addr, "addr", console.DefaultAddr, "loopback address to serve the page on")
	fl.StringVar(&rt, "runtime", runtimeLocal, "where components run: local (OS processes), docker (containers, the links' proxies in a Toxiproxy container) or kubernetes (a namespace of a cluster, the links' proxies in a Toxiproxy pod)")
	fl.StringVar(&image, "image", "", "docker, kubernetes: image holding the faultline binary (default: as run builds or names it)")
	kube.register(cmd)
	fl.StringVar(&topo, "topology", "", "start this topology (a file holding a topology: or a scenario with one) instead of a scenario's system")
	fl.BoolVar(&verbose, "verbose", false, "log the system's start and every console event to stderr")
	return cmd
}

// topologyScenario is a scenario whose system is the topology in file, with nothing else:
// the console's system without load or faults of its own. The file may hold the topology
// itself or a document with a topology: key (a scenario), as system.topology reads it.
func topologyScenario(file string) (*scenarios.Scenario, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, usagef("console: --topology %s: %v", file, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, usagef("console: --topology: %v (give a topology file, such as one of examples/*/)", err)
	}
	data, err := json.Marshal(map[string]any{
		"name":        "console-topology",
		"description": "the topology in " + abs + ", started by faultline console",
		"system":      map[string]string{"topology": abs},
		// A scenario plans a load, which validation wants whole; the console clears it below
		// (its load is started by hand and needs a scenario's targets).
		"load": map[string]any{"rate": "1/s", "duration": "1s", "mix": map[string]int{"none": 1},
			"targets": []map[string]string{{"name": "none", "url": "http://127.0.0.1:9/"}}},
	})
	if err != nil {
		return nil, err
	}
	// JSON is YAML; the file name places relative paths beside the topology.
	sc, err := scenarios.Parse(filepath.Join(filepath.Dir(abs), "console-topology.yaml"), data)
	if err != nil {
		return nil, usagef("console: --topology %s: %v", file, err)
	}
	return sc, nil
}

// fileExists reports whether path is a regular file.
func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
