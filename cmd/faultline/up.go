package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/system"
)

// DefaultDir is where `faultline up` keeps its run directory unless told otherwise.
const DefaultDir = ".faultline/system"

// systemFlags are the flags shared by every command that starts a system.
type systemFlags struct {
	dir                                   string
	merchants, orders, products, gateways int
	design                                string
	leaseTTL                              time.Duration
}

func (f *systemFlags) register(cmd *cobra.Command, defaultDir string) {
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", defaultDir, "run directory: config/, logs/, data/ (kept between starts), secrets/")
	fl.IntVar(&f.merchants, "merchants", system.DefaultReplicas, "merchant replicas")
	fl.IntVar(&f.orders, "orders", system.DefaultReplicas, "order replicas")
	fl.IntVar(&f.products, "products", system.DefaultReplicas, "product replicas")
	fl.IntVar(&f.gateways, "gateways", 0, "gateways (0: as many as the design says, default 1)")
	fl.StringVar(&f.design, "design", "", "design YAML (default: the built-in resilient design)")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", system.DefaultLeaseTTL, "registry lease TTL (heartbeat) of every instance")
}

func (f *systemFlags) spec() (system.Spec, error) {
	s := system.Spec{
		Dir: f.dir, Merchants: f.merchants, Orders: f.orders, Products: f.products,
		Gateways: f.gateways, DesignFile: f.design, LeaseTTL: f.leaseTTL,
	}
	if errs := s.Validate(); len(errs) > 0 {
		var b strings.Builder
		for _, e := range errs {
			b.WriteString("\n  - " + e.Error())
		}
		return s, usagef("invalid system flags:%s", b.String())
	}
	return s, nil
}

func newUpCmd() *cobra.Command {
	var f systemFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the reference system as local processes and keep it running until Ctrl-C",
		Example: "  faultline up\n" +
			"  faultline up --gateways 2 --orders 3 --design designs/no-breaker.yaml",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := f.spec()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return up(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), spec)
		},
	}
	f.register(cmd, DefaultDir)
	return cmd
}

func up(ctx context.Context, out, errOut io.Writer, spec system.Spec) error {
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rt := local.New(local.WithLogger(log))
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), system.DefaultStopTimeout)
		defer cancel()
		_ = rt.Close(cctx)
	}()
	fmt.Fprintf(out, "starting the reference system in %s ...\n", spec.Dir)
	sys, err := system.Start(ctx, rt, spec, system.WithLogger(log))
	if err != nil {
		return err
	}
	token, err := sys.Token("demo", 24*time.Hour)
	if err != nil {
		_ = stopSystem(sys)
		return err
	}
	printUp(out, sys, token)
	watchExits(ctx, errOut, sys)

	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping every component ...")
	if err := stopSystem(sys); err != nil {
		return err
	}
	fmt.Fprintln(out, "stopped; data kept in", sys.Spec().Dir+"/data")
	return nil
}

func stopSystem(sys *system.System) error {
	ctx, cancel := context.WithTimeout(context.Background(), system.DefaultStopTimeout)
	defer cancel()
	return sys.Stop(ctx)
}

// watchExits reports a component that dies while the system is up, so a user sees a crash
// in the terminal instead of only in a log file.
func watchExits(ctx context.Context, errOut io.Writer, sys *system.System) {
	for _, c := range sys.Components() {
		done := c.Process.Wait()
		go func() {
			select {
			case <-ctx.Done():
			case <-done:
				if ctx.Err() == nil {
					fmt.Fprintf(errOut, "component %s exited: %v (log: %s)\n", c.Name, c.Process.ExitErr(), c.LogPath)
				}
			}
		}()
	}
}

func printUp(out io.Writer, sys *system.System, token string) {
	urls := sys.GatewayURLs()
	fmt.Fprintf(out, "\nreference system ready in %s (%d processes)\n\n", sys.ReadyDuration().Round(time.Millisecond), len(sys.Components()))
	for i, u := range urls {
		fmt.Fprintf(out, "gateway %d:  %s\n", i+1, u)
	}
	fmt.Fprintf(out, "\nbearer token (subject \"demo\", valid 24h):\n  export TOKEN=%s\n\n", token)
	fmt.Fprintf(out, "try:\n")
	fmt.Fprintf(out, "  curl -s -H \"Authorization: Bearer $TOKEN\" %s/products\n", urls[0])
	fmt.Fprintf(out, "  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Idempotency-Key: demo-1' \\\n"+
		"       -H 'Content-Type: application/json' -d '{\"merchant_id\":\"m-01\",\"product_id\":\"p-001\",\"quantity\":1}' %s/orders\n\n", urls[0])
	dir := sys.Spec().Dir
	fmt.Fprintf(out, "logs:    %s/logs/<component>.log\n", dir)
	fmt.Fprintf(out, "data:    %s/data/<service>/ (kept for the next start)\n", dir)
	fmt.Fprintf(out, "configs: %s/config/\n\n", dir)
	fmt.Fprintln(out, "components:")
	for _, c := range sys.Components() {
		fmt.Fprintf(out, "  %-11s pid %-7d listen %-16s admin http://%s\n", c.Name, c.Process.PID(), c.Listen, c.Admin)
	}
	fmt.Fprintln(out, "\npress Ctrl-C to stop")
}
