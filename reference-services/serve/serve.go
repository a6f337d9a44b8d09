// Package serve is the entry point of every reference-system process: `faultline serve
// --config FILE` and a re-executed test binary both land in Main, so a component behaves
// the same whether a user, the harness or `go test` started it.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/faultline-dev/faultline/reference-services/balancer"
	"github.com/faultline-dev/faultline/reference-services/broker"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/gateway"
	"github.com/faultline-dev/faultline/reference-services/merchant"
	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/order"
	"github.com/faultline-dev/faultline/reference-services/product"
	"github.com/faultline-dev/faultline/reference-services/registry"
)

// ConfigEnv names the environment variable that turns a test binary into a component: a
// TestMain that finds it set calls Main with its value instead of running tests, so
// integration tests need no separately built faultline binary.
const ConfigEnv = "FAULTLINE_SERVE_CONFIG"

// MainFunc is a component's process main. It declares its own readiness conditions, marks
// "init" ready, serves until ctx ends and deregisters cleanly before returning.
type MainFunc func(ctx context.Context, n *node.Node) error

// mains maps every config kind to its process main.
var mains = map[string]MainFunc{
	config.KindRegistry: registry.RunServer,
	config.KindBroker:   broker.RunServer,
	config.KindMerchant: merchant.Run,
	config.KindProduct:  product.Run,
	config.KindOrder:    order.Run,
	config.KindGateway:  gateway.Run,
	config.KindBalancer: balancer.Run,
}

// Main loads the component config at cfgPath and runs that component until ctx ends or the
// process receives SIGTERM or SIGINT. Logs are JSON on stderr, which the runtime appends to
// the component's log file.
func Main(ctx context.Context, cfgPath string) error {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		log.Error("load config", "path", cfgPath, "err", err)
		return fmt.Errorf("load component config: %w", err)
	}
	run, ok := mains[cfg.Kind]
	if !ok {
		return fmt.Errorf("dispatch component: no main for kind %q", cfg.Kind)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	n := node.New(cfg, log)
	n.Pending("init", "starting")
	if err := n.StartAdmin(ctx); err != nil {
		n.Log.Error("start admin", "err", err)
		return fmt.Errorf("start admin: %w", err)
	}
	n.Log.Info("component starting", "kind", cfg.Kind, "listen", cfg.Listen, "admin", cfg.Admin, "pid", os.Getpid())
	err = run(ctx, n)
	if err != nil && !errors.Is(err, context.Canceled) {
		n.Log.Error("component failed", "err", err)
		return fmt.Errorf("run %s: %w", cfg.Name, err)
	}
	n.Log.Info("component stopped")
	return nil
}

// FromEnv runs Main and exits when ConfigEnv is set, and returns otherwise. Call it first in
// a TestMain so the test binary doubles as the faultline binary for re-executed children.
func FromEnv() {
	path := os.Getenv(ConfigEnv)
	if path == "" {
		return
	}
	if err := Main(context.Background(), path); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
