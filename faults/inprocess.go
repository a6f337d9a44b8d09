package faults

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

// proxyServer is where a Links' proxies run: Toxiproxy inside this process, or a
// Toxiproxy server elsewhere driven through its HTTP API (WithRemote). Links keeps the
// bookkeeping every backend shares (holders, dead-man timers, link metadata) and leaves
// only the proxies themselves to the server.
type proxyServer interface {
	// create starts a proxy called name that forwards to upstream.
	create(ctx context.Context, name, upstream string) (proxy, error)
	// dial maps an address on the callers' network (a proxy's listen address or a link's
	// upstream) to one this process can dial.
	dial(addr string) (string, error)
	// healAll removes every toxic from proxies and starts every one of them again.
	healAll(ctx context.Context, proxies []proxy) error
	// handler is Toxiproxy's HTTP API, for hand injection behind guardAPI.
	handler() http.Handler
	// close removes every proxy the server created.
	close(ctx context.Context) error
	// control starts a bare proxy called name to upstream, beside a link's own, and
	// returns its listen address and how to remove it: a measurement's baseline through
	// the same server, so that the hop through it is not counted as the fault's effect.
	control(ctx context.Context, name, upstream string) (listen string, stop func(context.Context), err error)
}

// errNoControl is control's error on a server given no ports for control proxies.
var errNoControl = errors.New("take control port: the server has none (Remote.ControlPorts)")

// proxy is one link's proxy on a proxyServer.
type proxy interface {
	// listen is the address callers dial.
	listen() string
	// setUpstream re-points the proxy, keeping its listen address and enabled state.
	setUpstream(ctx context.Context, upstream string) error
	// addToxic installs t, whose name, stream and toxicity are already filled in.
	addToxic(ctx context.Context, t Toxic) error
	// removeToxic removes a toxic; one that is not there is not an error.
	removeToxic(ctx context.Context, name string) error
	// toxicNames lists the proxy's toxics, sorted.
	toxicNames(ctx context.Context) ([]string, error)
	// setEnabled starts (accepting connections) or stops (refusing them, dropping those
	// open) the proxy; asking for the state it is already in is a no-op.
	setEnabled(ctx context.Context, enabled bool) error
	// enabled reports whether the proxy accepts connections.
	enabled(ctx context.Context) (bool, error)
}

// localServer runs the proxies in this process, on 127.0.0.1.
type localServer struct {
	server *toxiproxy.ApiServer
}

// newLocalServer starts an empty Toxiproxy server in this process. Its logger is
// silenced: Toxiproxy logs every connection, which would drown a run's own output.
func newLocalServer() *localServer {
	return &localServer{server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())}
}

func (s *localServer) create(_ context.Context, name, upstream string) (proxy, error) {
	p := toxiproxy.NewProxy(s.server, name, "127.0.0.1:0", upstream)
	if err := s.server.Collection.Add(p, true); err != nil {
		return nil, err
	}
	lp := &localProxy{p: p, traffic: newLinkTraffic()}
	if err := lp.addCounter(); err != nil {
		lp.traffic.release()
		_ = s.server.Collection.Remove(name)
		return nil, fmt.Errorf("count traffic: %w", err)
	}
	return lp, nil
}

// dial is the identity: the proxies and the upstreams are on this host already.
func (s *localServer) dial(addr string) (string, error) { return addr, nil }

func (s *localServer) healAll(ctx context.Context, proxies []proxy) error {
	var errs []error
	for _, p := range proxies {
		lp := p.(*localProxy)
		lp.p.Toxics.ResetToxics(ctx)
		if err := lp.addCounter(); err != nil {
			errs = append(errs, fmt.Errorf("count traffic of %q: %w", lp.p.Name, err))
		}
		if err := startProxy(lp.p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *localServer) handler() http.Handler { return s.server.Routes() }

func (s *localServer) control(_ context.Context, name, upstream string) (string, func(context.Context), error) {
	p := toxiproxy.NewProxy(s.server, name, "127.0.0.1:0", upstream)
	if err := s.server.Collection.Add(p, true); err != nil {
		return "", nil, fmt.Errorf("start control proxy: %w", err)
	}
	return listenOf(p), func(context.Context) { _ = s.server.Collection.Remove(name) }, nil
}

func (s *localServer) close(context.Context) error { return s.server.Collection.Clear() }

// localProxy is a proxy of the in-process server; it acts on *toxiproxy.Proxy directly.
// Its traffic counter sits first in its upstream chain (see trafficToxic).
type localProxy struct {
	p       *toxiproxy.Proxy
	traffic *linkTraffic
}

// addCounter puts the traffic counter on the proxy; the proxy's toxics must be empty, so
// that it comes first.
func (lp *localProxy) addCounter() error {
	body, err := toxicJSON(lp.traffic.toxic())
	if err != nil {
		return err
	}
	_, err = lp.p.Toxics.AddToxicJson(strings.NewReader(string(body)))
	return err
}

// counter is the proxy's traffic counter.
func (lp *localProxy) counter() *linkTraffic { return lp.traffic }

func (lp *localProxy) listen() string { return listenOf(lp.p) }

func listenOf(p *toxiproxy.Proxy) string {
	p.Lock()
	defer p.Unlock()
	return p.Listen
}

func enabledOf(p *toxiproxy.Proxy) bool {
	p.Lock()
	defer p.Unlock()
	return p.Enabled
}

func (lp *localProxy) setUpstream(_ context.Context, upstream string) error {
	update := &toxiproxy.Proxy{Listen: listenOf(lp.p), Upstream: upstream, Enabled: enabledOf(lp.p)}
	return lp.p.Update(update)
}

func (lp *localProxy) addToxic(_ context.Context, t Toxic) error {
	body, err := toxicJSON(t)
	if err != nil {
		return err
	}
	_, err = lp.p.Toxics.AddToxicJson(strings.NewReader(string(body)))
	return err
}

func (lp *localProxy) removeToxic(ctx context.Context, name string) error {
	if err := lp.p.Toxics.RemoveToxic(ctx, name); err != nil && !errors.Is(err, toxiproxy.ErrToxicNotFound) {
		return err
	}
	return nil
}

func (lp *localProxy) toxicNames(context.Context) ([]string, error) {
	var out []string
	for _, t := range lp.p.Toxics.GetToxicArray() {
		if w, ok := t.(*toxics.ToxicWrapper); ok && w.Name != trafficToxicName {
			out = append(out, w.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (lp *localProxy) setEnabled(_ context.Context, enabled bool) error {
	if enabled {
		return startProxy(lp.p)
	}
	lp.p.Stop()
	return nil
}

func (lp *localProxy) enabled(context.Context) (bool, error) { return enabledOf(lp.p), nil }

func startProxy(p *toxiproxy.Proxy) error {
	if err := p.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
		return fmt.Errorf("start proxy %q: %w", p.Name, err)
	}
	return nil
}
