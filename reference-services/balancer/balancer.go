// Package balancer is server-side discovery: an L7 gRPC proxy that, for every call, picks a
// live instance of the called service from the registry and forwards the call to it. Callers
// then know one address (the balancer's) and nothing about instances — the transparent design
// the architects compare with client-side discovery.
package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/registry"
)

// Caller is the service name the balancer watches the registry as (routes are per caller).
const Caller = "balancer"

// Outcomes of faultline_balancer_calls_total.
const (
	OutcomeOK         = "ok"
	OutcomeError      = "error"
	OutcomeNoInstance = "no_instance"
)

// failedFor is how long an instance that just failed is skipped when another is available.
const failedFor = time.Second

// Run is the process main for kind "balancer": it proxies gRPC calls on n.Config.Listen to
// instances found through the registry until ctx ends, then drains in-flight calls briefly.
func Run(ctx context.Context, n *node.Node) error {
	n.Pending("registry", "watching the registry")
	n.Pending("grpc", "starting the proxy")
	n.Ready("init")
	c, err := registry.Connect(ctx, n.Config.Registry, n.Registry, n.Log)
	if err != nil {
		return fmt.Errorf("run balancer: %w", err)
	}
	defer func() { _ = c.Close() }()
	w, err := c.Watch(ctx, Caller, n.Config.Routed, n.Registry)
	if err != nil {
		return fmt.Errorf("run balancer: %w", err)
	}
	n.Ready("registry")

	p, err := New(w, WithRegisterer(n.Registry), WithLogger(n.Log))
	if err != nil {
		return fmt.Errorf("run balancer: %w", err)
	}
	defer p.Close()
	ln, err := node.Listen(n.Config.Listen)
	if err != nil {
		return fmt.Errorf("run balancer: %w", err)
	}
	srv := p.Server()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	n.Ready("grpc")
	n.Log.Info("balancer ready", "listen", ln.Addr().String())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serve balancer: %w", err)
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		srv.Stop()
	}
	return nil
}

// Source is where the proxy finds instances; *registry.Watcher is the real one.
type Source interface {
	Instances(service string) []registry.Instance
	Services() []string
}

var _ Source = (*registry.Watcher)(nil)

// Option configures a Proxy.
type Option func(*Proxy)

// WithRegisterer sets where faultline_balancer_calls_total is registered.
func WithRegisterer(reg prometheus.Registerer) Option { return func(p *Proxy) { p.reg = reg } }

// WithLogger sets the proxy's logger.
func WithLogger(log *slog.Logger) Option { return func(p *Proxy) { p.log = log } }

// Proxy forwards calls to instances of the called service, round robin.
type Proxy struct {
	src   Source
	reg   prometheus.Registerer
	log   *slog.Logger
	calls *prometheus.CounterVec

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn // instance address -> connection
	failed map[string]time.Time        // instance address -> last failure
	next   map[string]*atomic.Uint64   // service -> round-robin counter
	stop   chan struct{}
	done   chan struct{}
}

// New builds a proxy over src; call Server to serve it and Close to release connections.
func New(src Source, opts ...Option) (*Proxy, error) {
	if src == nil {
		return nil, errors.New("build balancer: source is nil")
	}
	p := &Proxy{
		src: src, log: slog.New(slog.DiscardHandler),
		conns: map[string]*grpc.ClientConn{}, failed: map[string]time.Time{}, next: map[string]*atomic.Uint64{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	for _, o := range opts {
		o(p)
	}
	p.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "faultline_balancer_calls_total",
		Help: "Calls proxied by the server-side balancer, by target service and outcome.",
	}, []string{"service", "outcome"})
	if p.reg != nil {
		if err := p.reg.Register(p.calls); err != nil {
			return nil, fmt.Errorf("register balancer metrics: %w", err)
		}
	}
	go p.janitor()
	return p, nil
}

// Server returns a gRPC server that proxies every method it is called with.
func (p *Proxy) Server() *grpc.Server {
	return grpc.NewServer(grpc.UnknownServiceHandler(p.handle), grpc.ForceServerCodec(rawCodec{}))
}

// Close releases every backend connection.
func (p *Proxy) Close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, cc := range p.conns {
		_ = cc.Close()
		delete(p.conns, a)
	}
}

// janitor closes connections to instances that left the registry.
func (p *Proxy) janitor() {
	defer close(p.done)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		live := map[string]bool{}
		for _, s := range p.src.Services() {
			for _, in := range p.src.Instances(s) {
				live[in.Addr] = true
			}
		}
		p.mu.Lock()
		for a, cc := range p.conns {
			if !live[a] {
				_ = cc.Close()
				delete(p.conns, a)
				delete(p.failed, a)
			}
		}
		p.mu.Unlock()
	}
}

// ServiceOf maps a full method name to a registry service name:
// "/faultline.ref.v1.ProductService/GetProduct" -> "product".
func ServiceOf(fullMethod string) string {
	svc, _, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return ""
	}
	if i := strings.LastIndexByte(svc, '.'); i >= 0 {
		svc = svc[i+1:]
	}
	return strings.ToLower(strings.TrimSuffix(svc, "Service"))
}

func (p *Proxy) conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(registry.DialConnectParams()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	)
	if err != nil {
		return nil, fmt.Errorf("dial instance %s: %w", addr, err)
	}
	p.conns[addr] = cc
	return cc, nil
}

// candidates orders the instances of service for one call: round robin, with instances that
// failed in the last second or whose connection is down moved to the end (kept as a last
// resort, because a suspect instance is better than none).
func (p *Proxy) candidates(service string) []registry.Instance {
	insts := p.src.Instances(service)
	if len(insts) == 0 {
		return nil
	}
	p.mu.Lock()
	ctr := p.next[service]
	if ctr == nil {
		ctr = new(atomic.Uint64)
		p.next[service] = ctr
	}
	now := time.Now()
	start := int(ctr.Add(1) % uint64(len(insts)))
	var good, bad []registry.Instance
	for i := range insts {
		in := insts[(start+i)%len(insts)]
		cc := p.conns[in.Addr]
		if now.Sub(p.failed[in.Addr]) < failedFor || (cc != nil && cc.GetState() == connectivity.TransientFailure) {
			bad = append(bad, in)
		} else {
			good = append(good, in)
		}
	}
	p.mu.Unlock()
	return append(good, bad...)
}

func (p *Proxy) markFailed(addr string) {
	p.mu.Lock()
	p.failed[addr] = time.Now()
	p.mu.Unlock()
}

// instanceFailure reports whether err says the instance (not the request) is in trouble.
func instanceFailure(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown, codes.DataLoss:
		return true
	}
	return false
}

// hopHeaders are set by gRPC itself for the outgoing call and must not be copied.
var hopHeaders = []string{":authority", "content-type", "user-agent", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding"}

func (p *Proxy) handle(_ any, ss grpc.ServerStream) (err error) {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "balancer: no method on stream")
	}
	service := ServiceOf(method)
	if service == "" {
		p.calls.WithLabelValues("unknown", OutcomeError).Inc()
		return status.Errorf(codes.Unimplemented, "balancer: cannot map %s to a service", method)
	}
	outcome := OutcomeOK
	defer func() {
		if err != nil && outcome == OutcomeOK {
			outcome = OutcomeError
		}
		p.calls.WithLabelValues(service, outcome).Inc()
	}()

	md, _ := metadata.FromIncomingContext(ss.Context())
	md = md.Copy()
	for _, h := range hopHeaders {
		delete(md, h)
	}
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ss.Context(), md))
	defer cancel()

	cands := p.candidates(service)
	if len(cands) == 0 {
		outcome = OutcomeNoInstance
		return status.Errorf(codes.Unavailable, "balancer: no instance of %s", service)
	}
	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
	var cs grpc.ClientStream
	var addr string
	// Opening the stream sends nothing the backend acts on, so trying the next instance
	// when it fails is safe even for non-idempotent methods.
	for _, in := range cands {
		cc, derr := p.conn(in.Addr)
		if derr != nil {
			err = derr
			continue
		}
		cs, err = cc.NewStream(ctx, desc, method)
		if err == nil {
			addr = in.Addr
			break
		}
		p.markFailed(in.Addr)
		if ss.Context().Err() != nil {
			break
		}
	}
	if cs == nil {
		return status.Errorf(codes.Unavailable, "balancer: no reachable instance of %s: %v", service, err)
	}

	go func() {
		for {
			f := &frame{}
			if err := ss.RecvMsg(f); err != nil {
				if errors.Is(err, io.EOF) {
					_ = cs.CloseSend()
				} else {
					cancel()
				}
				return
			}
			if err := cs.SendMsg(f); err != nil {
				return // the real status comes from cs.RecvMsg
			}
		}
	}()

	headerSent := false
	for {
		f := &frame{}
		rerr := cs.RecvMsg(f)
		if !headerSent {
			headerSent = true
			if h, herr := cs.Header(); herr == nil && (rerr == nil || len(h) > 0) {
				if err := ss.SendHeader(h); err != nil {
					return err
				}
			}
		}
		if rerr != nil {
			ss.SetTrailer(cs.Trailer())
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			if instanceFailure(rerr) && ss.Context().Err() == nil {
				p.markFailed(addr)
			}
			return rerr
		}
		if err := ss.SendMsg(f); err != nil {
			return err
		}
	}
}

// frame is one gRPC message, forwarded without decoding.
type frame struct{ data []byte }

// rawCodec passes messages through as bytes, so the balancer needs no knowledge of the
// services it proxies.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("marshal frame: unexpected %T", v)
	}
	return f.data, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("unmarshal frame: unexpected %T", v)
	}
	f.data = append(f.data[:0], data...)
	return nil
}

// Name is "proto" so that the proxied calls keep the application/grpc+proto content type.
func (rawCodec) Name() string { return "proto" }
