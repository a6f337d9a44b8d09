package registry

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
)

// Discovery modes accepted by Dial (design.Discovery).
const (
	ModeClient = "client"
	ModeServer = "server"
)

// Scheme is the gRPC resolver scheme of client-side discovery: faultline:///<service>.
const Scheme = "faultline"

// connectParams make a restarted instance usable again within about a second: gRPC's default
// reconnect backoff grows to two minutes, far longer than any scenario's recovery check.
var connectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: time.Second,
}

// Dial returns a gRPC connection to service. Mode "client" resolves instances through w (a
// resolver on the watched cache) and balances round robin with passive outlier ejection; mode
// "server" dials the balancer process at balancerAddr, which picks an instance per call, so w
// may be nil. opts come last and can override the defaults (insecure credentials: the
// reference system only talks over loopback or a private container network).
func Dial(w *Watcher, mode, balancerAddr, service string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(connectParams),
	}
	switch mode {
	case ModeClient, "":
		if w == nil {
			return nil, errors.New("dial service: client-side discovery needs a watcher")
		}
		if service == "" {
			return nil, errors.New("dial service: service is empty")
		}
		base = append(base,
			grpc.WithResolvers(&resolverBuilder{w: w}),
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"`+BalancerName+`":{}}]}`),
		)
		cc, err := grpc.NewClient(Scheme+":///"+service, append(base, opts...)...)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", service, err)
		}
		return cc, nil
	case ModeServer:
		if balancerAddr == "" {
			return nil, errors.New("dial service: server-side discovery needs a balancer address")
		}
		cc, err := grpc.NewClient("passthrough:///"+balancerAddr, append(base, opts...)...)
		if err != nil {
			return nil, fmt.Errorf("dial balancer %s: %w", balancerAddr, err)
		}
		return cc, nil
	default:
		return nil, fmt.Errorf("dial service: unknown discovery mode %q (want %q or %q)", mode, ModeClient, ModeServer)
	}
}

// resolverBuilder feeds gRPC from a Watcher; it is passed per connection (WithResolvers), so
// nothing global depends on which watcher a process uses.
type resolverBuilder struct{ w *Watcher }

var _ resolver.Builder = (*resolverBuilder)(nil)

func (b *resolverBuilder) Scheme() string { return Scheme }

func (b *resolverBuilder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	service := t.Endpoint()
	if service == "" {
		return nil, fmt.Errorf("build resolver: target %q names no service", t.URL.String())
	}
	ch, unsub := b.w.Subscribe(service)
	r := &watchResolver{w: b.w, service: service, cc: cc, unsub: unsub, done: make(chan struct{})}
	r.push()
	go func() {
		for {
			select {
			case <-ch:
				r.push()
			case <-r.done:
				return
			}
		}
	}()
	return r, nil
}

type watchResolver struct {
	w       *Watcher
	service string
	cc      resolver.ClientConn
	unsub   func()
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
}

var _ resolver.Resolver = (*watchResolver)(nil)

func (r *watchResolver) push() {
	r.mu.Lock()
	defer r.mu.Unlock()
	insts := r.w.Instances(r.service)
	addrs := make([]resolver.Address, 0, len(insts))
	for _, in := range insts {
		addrs = append(addrs, resolver.Address{Addr: in.Addr})
	}
	// An empty list is pushed too (not just reported as an error) so that the balancer drops
	// the connections of instances that have all gone.
	_ = r.cc.UpdateState(resolver.State{Addresses: addrs})
}

// ResolveNow re-reads the cache; the cache itself is pushed by the watch, so this is cheap.
func (r *watchResolver) ResolveNow(resolver.ResolveNowOptions) {}

func (r *watchResolver) Close() {
	r.once.Do(func() {
		r.unsub()
		close(r.done)
	})
}

// DialConnectParams returns the reconnect settings Dial uses, for other connections to
// instances (the balancer's) that must also pick a restarted instance up within a second.
func DialConnectParams() grpc.ConnectParams { return connectParams }
