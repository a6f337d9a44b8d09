package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/auth"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/design"
	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/registry"
	"github.com/faultline-dev/faultline/reference-services/resilience"
)

// Readiness conditions of a gateway process.
const (
	condListening    = "listening"
	condDependencies = "dependencies"
	condRegistered   = "registered"
)

// drainTimeout bounds how long a stopping gateway waits for requests in flight.
const drainTimeout = 5 * time.Second

// Run is the process main for kind "gateway": it serves REST on n.Config.Listen until ctx
// ends, then deregisters (so callers stop picking it at once), drains and returns nil.
func Run(ctx context.Context, n *node.Node) (err error) {
	cfg := n.Config
	service := cfg.Service
	if service == "" {
		service = config.KindGateway
	}
	n.Pending(condListening, "starting")
	n.Pending(condDependencies, "waiting for merchant, product and order instances")
	n.Pending(condRegistered, "not registered yet")
	// serve.Main started the admin server with "init" pending; our own conditions are
	// declared now, so "init" can go.
	n.Ready("init")
	d, err := design.Load(cfg.Design)
	if err != nil {
		return err
	}
	if cfg.JWT.SecretFile == "" {
		return errors.New("start gateway: jwt.secret_file is empty")
	}
	secret, err := auth.LoadOrCreateSecret(cfg.JWT.SecretFile)
	if err != nil {
		return err
	}

	rc, err := registry.Connect(ctx, cfg.Registry, n.Registry, n.Log)
	if err != nil {
		return fmt.Errorf("connect registry: %w", err)
	}
	defer func() { err = errors.Join(err, closeErr("close registry client", rc.Close())) }()
	w, err := rc.Watch(ctx, service, cfg.Routed, n.Registry)
	if err != nil {
		return fmt.Errorf("watch registry: %w", err)
	}

	deps := Deps{Verifier: auth.NewVerifier(secret, cfg.JWT.Issuer, cfg.JWT.Audience), Edges: map[string]*resilience.Edge{}}
	dial := func(dep string) (*grpc.ClientConn, error) {
		edge, err := resilience.NewEdge(config.KindGateway, dep, d.Policy(config.KindGateway, dep), n.Registry, resilience.WithLogger(n.Log))
		if err != nil {
			return nil, err
		}
		deps.Edges[dep] = edge
		conn, err := registry.Dial(w, d.Discovery, cfg.Balancer, dep, grpc.WithChainUnaryInterceptor(edge.UnaryClientInterceptor()))
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", dep, err)
		}
		return conn, nil
	}
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for _, dep := range []string{config.KindMerchant, config.KindProduct, config.KindOrder} {
		conn, err := dial(dep)
		if err != nil {
			return err
		}
		conns = append(conns, conn)
		switch dep {
		case config.KindMerchant:
			deps.Merchants = refv1.NewMerchantServiceClient(conn)
		case config.KindProduct:
			deps.Products = refv1.NewProductServiceClient(conn)
		case config.KindOrder:
			deps.Orders = refv1.NewOrderServiceClient(conn)
		}
	}

	h, err := NewHandler(deps, WithName(cfg.Name), WithLogger(n.Log), WithRegisterer(n.Registry), WithLimits(d.Gateway))
	if err != nil {
		return err
	}
	ln, err := node.Listen(cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen gateway: %w", err)
	}
	srv := NewServer(h)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	n.Ready(condListening)
	n.Log.Info("gateway listening", "addr", ln.Addr().String(), "design", d.Name, "discovery", d.Discovery)

	go func() {
		for _, dep := range []string{config.KindMerchant, config.KindProduct, config.KindOrder} {
			if d.Discovery == design.DiscoveryServer {
				break // the balancer owns discovery; the gateway cannot see its view
			}
			if err := w.WaitFor(ctx, dep, 1); err != nil {
				return
			}
		}
		n.Ready(condDependencies)
	}()

	reg, err := rc.Register(ctx, registry.Instance{Service: service, Name: cfg.Name, Addr: node.AdvertiseAddr(ln.Addr().String()), Admin: node.AdvertiseAddr(n.AdminAddr())}, cfg.LeaseTTL.Std())
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("register gateway: %w", err)
	}
	inst := registry.Instance{Service: service, Name: cfg.Name}
	go func() {
		// Register returns even while the registry is away; ready means visible to callers.
		if rc.AwaitKey(ctx, inst.Key()) == nil {
			n.Ready(condRegistered)
		}
	}()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = reg.Close(context.Background())
			return fmt.Errorf("serve gateway: %w", err)
		}
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	n.Pending(condRegistered, "stopping")
	derr := reg.Close(stopCtx)
	serr := srv.Shutdown(stopCtx)
	return errors.Join(closeErr("deregister gateway", derr), closeErr("drain gateway", serr))
}

// NewServer is the HTTP server Run serves h with: its timeouts are part of the gateway's
// protection against slow clients.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

func closeErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
