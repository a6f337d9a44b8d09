// Package lifecycle is the process lifecycle merchant, product and order share: open
// the service's database, serve gRPC with the standard health service, register in the
// registry, and undo it all in the reverse order on shutdown.
package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/registry"
	"github.com/faultline-dev/faultline/reference-services/store"
)

// Shutdown bounds: a clean stop must finish well inside the harness's stop timeout.
const (
	deregisterTimeout = 2 * time.Second
	drainTimeout      = 3 * time.Second
)

// ServiceName is the logical service of n (config.Service, else its kind).
func ServiceName(n *node.Node) string {
	if n.Config.Service != "" {
		return n.Config.Service
	}
	return n.Config.Kind
}

// Catalog is the configured seed catalogue, or the default one when none was given.
func Catalog(n *node.Node) config.Catalog {
	c := n.Config.Catalog
	if c.Merchants == 0 && c.Products == 0 {
		return config.DefaultCatalog()
	}
	return c
}

// OpenStore opens <data_dir>/<service>.db, creating the directory if needed.
func OpenStore(ctx context.Context, n *node.Node) (*sql.DB, error) {
	if n.Config.DataDir == "" {
		return nil, errors.New("open store: data_dir is empty")
	}
	if err := os.MkdirAll(n.Config.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	return store.Open(ctx, filepath.Join(n.Config.DataDir, ServiceName(n)+".db"))
}

// Process is a gRPC server that is listening and registered.
type Process struct {
	n      *node.Node
	gs     *grpc.Server
	health *health.Server
	reg    *registry.Client
	ownReg bool // reg was connected here, so shutdown closes it
	regn   *registry.Registration
	served chan struct{}
	// serveErr is why gs.Serve returned; written before served is closed.
	serveErr error
}

// NewGRPCServer returns a server with the standard health service already registered.
func NewGRPCServer(opts ...grpc.ServerOption) (*grpc.Server, *health.Server) {
	gs := grpc.NewServer(opts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	return gs, hs
}

// Serve listens on Config.Listen, serves gs, and registers the instance with its lease. It
// marks "grpc" ready once listening and "registry" once the instance key is visible in the
// registry (Register itself keeps trying in the background while the registry is away). The
// caller must call shutdown, also after an error. reg may be nil (serve connects its own
// client) or a client the caller already uses for discovery, so the process keeps one
// registry session and one faultline_registry_session_up.
func Serve(ctx context.Context, n *node.Node, reg *registry.Client, gs *grpc.Server, hs *health.Server, services ...string) (*Process, error) {
	p := &Process{n: n, gs: gs, health: hs, reg: reg, served: make(chan struct{})}
	ln, err := node.Listen(n.Config.Listen)
	if err != nil {
		close(p.served)
		return p, fmt.Errorf("listen grpc: %w", err)
	}
	for _, s := range append([]string{""}, services...) {
		hs.SetServingStatus(s, healthpb.HealthCheckResponse_SERVING)
	}
	go func() {
		defer close(p.served)
		if err := gs.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.Log.Error("serve grpc", "err", err)
			p.serveErr = err
			// A dead listener must not keep looking ready and registered.
			n.Pending("grpc", "grpc server stopped: "+err.Error())
		}
	}()
	n.Ready("grpc")

	if p.reg == nil {
		p.reg, err = registry.Connect(ctx, n.Config.Registry, n.Registry, n.Log)
		if err != nil {
			return p, fmt.Errorf("connect registry: %w", err)
		}
		p.ownReg = true
	}
	admin := n.AdminAddr()
	if admin == "" {
		admin = n.Config.Admin
	}
	inst := registry.Instance{Service: ServiceName(n), Name: n.Config.Name, Addr: node.AdvertiseAddr(ln.Addr().String()), Admin: node.AdvertiseAddr(admin)}
	ttl := n.Config.LeaseTTL.Std()
	if ttl <= 0 {
		ttl = registry.DefaultTTL
	}
	p.regn, err = p.reg.Register(ctx, inst, ttl)
	if err != nil {
		return p, fmt.Errorf("register %s: %w", inst.Key(), err)
	}
	go func() {
		if p.reg.AwaitKey(ctx, inst.Key()) == nil {
			n.Ready("registry")
		}
	}()
	n.Log.Info("serving", "service", inst.Service, "addr", inst.Addr)
	return p, nil
}

// Wait blocks until ctx ends (a clean stop: nil) or the gRPC server stops on its own (an
// error, so the process exits and its supervisor sees it instead of a ready-looking
// process with a dead listener).
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-p.served:
		if ctx.Err() != nil {
			return nil
		}
		if p.serveErr != nil {
			return fmt.Errorf("serve grpc: %w", p.serveErr)
		}
		return errors.New("serve grpc: server stopped unexpectedly")
	}
}

// Shutdown deregisters first (callers stop picking this instance), then drains in-flight
// calls for a bounded time, then closes the registry client.
func (p *Process) Shutdown() {
	if p.regn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), deregisterTimeout)
		if err := p.regn.Close(ctx); err != nil {
			p.n.Log.Warn("deregister", "err", err)
		}
		cancel()
	}
	p.health.Shutdown()
	done := make(chan struct{})
	go func() {
		p.gs.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		p.gs.Stop()
		<-done
	}
	<-p.served
	if p.ownReg {
		if err := p.reg.Close(); err != nil {
			p.n.Log.Warn("close registry client", "err", err)
		}
	}
}
