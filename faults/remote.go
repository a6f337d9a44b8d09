package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"
)

// Remote is a Toxiproxy server outside this process, e.g. a container on the run's network.
type Remote struct {
	// API is the base URL of the server's HTTP API as this process reaches it ("http://127.0.0.1:32768").
	API string
	// Host is the name callers dial proxies by on their network ("toxiproxy").
	Host string
	// Ports are the ports, inside the server's network namespace, that proxies may listen on;
	// Add takes the lowest free one and running out is an error (naming how many there are).
	Ports []int
	// ControlPorts are further ports, apart from Ports, for the bare proxies a latency
	// measurement starts beside a link's own for its baseline (see measureLatency): the
	// hop through this server is then paid on both sides of the comparison. Each
	// measurement holds one for its duration; with none free it measures against the
	// upstream directly, and says so.
	ControlPorts []int
	// Dial maps an address on the callers' network (a proxy's "toxiproxy:20001" or a link's
	// upstream "api-1:9000") to one this process can dial, for Probe and ProbeDirect. It is
	// called at every probe because a restarted container may be published on another port.
	Dial func(addr string) (string, error)
}

// WithRemote makes Links drive a Toxiproxy server elsewhere (a container on the run's
// network, whose callers dial Remote.Host) through its HTTP API instead of one in this
// process. Every Links operation keeps its meaning; NewLinks rejects a Remote that cannot
// work, listing every problem.
func WithRemote(r Remote) Option {
	r.Ports, r.ControlPorts = slices.Clone(r.Ports), slices.Clone(r.ControlPorts)
	return func(l *Links) { l.remote = &r }
}

const (
	// remoteCallTimeout bounds every call to a remote server's API. Toxiproxy's client
	// takes no context and gives up only after its own 30 s, far too long for a heal on an
	// exit path; a healthy server answers in milliseconds.
	remoteCallTimeout = 10 * time.Second
	// remoteCloseTimeout bounds Close as a whole, so deleting many proxies from a server
	// that stopped answering costs this once, not once per proxy. It also bounds the
	// in-process server's Close, which never comes near it.
	remoteCloseTimeout = 15 * time.Second
)

// remoteServer is a proxyServer that drives a Toxiproxy server through its HTTP API.
type remoteServer struct {
	cfg    Remote
	api    *url.URL
	client *toxiclient.Client
	// forward carries ServeAPI's requests to the server; its transport is the server's
	// own so that Close can drop its idle connections.
	forward *http.Transport

	mu sync.Mutex
	// ports maps a port taken by a proxy to the proxy's name; names are every proxy this
	// server may have created, to delete on close.
	ports map[int]string
	names map[string]bool
}

// validate reports every problem with r at once, so a caller fixes them in one pass.
func (r Remote) validate() []error {
	var errs []error
	u, err := url.Parse(r.API)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("api %q: %w", r.API, err))
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errs = append(errs, fmt.Errorf("api %q: want an http:// URL with a host, such as http://127.0.0.1:8474", r.API))
	case u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("api %q: must not have a query or fragment", r.API))
	}
	if strings.TrimSpace(r.Host) == "" {
		errs = append(errs, errors.New("host is empty"))
	}
	if len(r.Ports) == 0 {
		errs = append(errs, errors.New("ports: want at least one"))
	}
	seen := map[int]string{}
	check := func(field string, ports []int) {
		for i, p := range ports {
			at := fmt.Sprintf("%s[%d]", field, i)
			if p < 1 || p > 65535 {
				errs = append(errs, fmt.Errorf("%s %d is not a TCP port (1-65535)", at, p))
				continue
			}
			if prev, dup := seen[p]; dup {
				errs = append(errs, fmt.Errorf("%s %d repeats %s", at, p, prev))
				continue
			}
			seen[p] = at
		}
	}
	check("ports", r.Ports)
	check("control_ports", r.ControlPorts)
	return errs
}

// newRemoteServer checks r and prepares a client for its API; it does not contact it.
func newRemoteServer(r Remote) (*remoteServer, error) {
	if errs := r.validate(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, err := range errs {
			msgs[i] = err.Error()
		}
		return nil, fmt.Errorf("check remote: %s", strings.Join(msgs, "; "))
	}
	u, _ := url.Parse(r.API)
	// The client appends "/proxies" and the like; a trailing slash would double it.
	u.Path = strings.TrimSuffix(u.Path, "/")
	r.Ports = slices.Sorted(slices.Values(r.Ports))
	r.ControlPorts = slices.Sorted(slices.Values(r.ControlPorts))
	return &remoteServer{
		cfg:    r,
		api:    u,
		client: toxiclient.NewClient(u.String()),
		forward: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: remoteCallTimeout}).DialContext,
			ResponseHeaderTimeout: remoteCallTimeout,
			IdleConnTimeout:       30 * time.Second,
		},
		ports: map[int]string{},
		names: map[string]bool{},
	}, nil
}

// within runs one client call under ctx and remoteCallTimeout. The client cannot be
// cancelled, so a call that overruns is left to end on the client's own 30 s timeout; fn
// must therefore hand its results back only through its return values.
func within[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteCallTimeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("call toxiproxy api: %w", ctx.Err())
	}
}

// apiStatus is the HTTP status of an error the server answered with, or 0 when the
// server did not answer (refused, timed out, not Toxiproxy).
func apiStatus(err error) int {
	var ae *toxiclient.ApiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// notSent reports an error from before the request left: the connection was never made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (s *remoteServer) create(ctx context.Context, name, upstream string) (proxy, error) {
	addr, err := s.createOn(ctx, s.cfg.Ports, name, upstream)
	if err != nil {
		return nil, err
	}
	return &remoteProxy{srv: s, name: name, addr: addr}, nil
}

// control starts a bare proxy on one of the control ports; stop deletes it and frees
// the port. A delete that fails leaves both reserved, so Close still deletes the proxy.
func (s *remoteServer) control(ctx context.Context, name, upstream string) (string, func(context.Context), error) {
	if len(s.cfg.ControlPorts) == 0 {
		return "", nil, errNoControl
	}
	addr, err := s.createOn(ctx, s.cfg.ControlPorts, name, upstream)
	if err != nil {
		return "", nil, err
	}
	stop := func(ctx context.Context) {
		err := s.deleteProxy(ctx, name)
		if err == nil || apiStatus(err) == http.StatusNotFound {
			s.release(name)
		}
	}
	return addr, stop, nil
}

// createOn creates a proxy on the lowest free port of pool and returns the address
// callers dial it by.
func (s *remoteServer) createOn(ctx context.Context, pool []int, name, upstream string) (string, error) {
	s.mu.Lock()
	port := 0
	for _, p := range pool {
		if _, taken := s.ports[p]; !taken {
			port = p
			break
		}
	}
	if port == 0 {
		s.mu.Unlock()
		return "", fmt.Errorf("take remote port: all %d ports are in use", len(pool))
	}
	s.ports[port] = name
	s.names[name] = true
	s.mu.Unlock()

	listen := net.JoinHostPort("0.0.0.0", strconv.Itoa(port))
	_, err := within(ctx, func() (*toxiclient.Proxy, error) { return s.client.CreateProxy(name, listen, upstream) })
	if err != nil {
		if apiStatus(err) != 0 || notSent(err) {
			// Nothing was created, so the port and name are free again. Otherwise (a
			// timeout, a broken answer) the request may still have been applied, and
			// keeping both makes Close delete the proxy and a later Add leave its port alone.
			s.release(name)
		}
		return "", fmt.Errorf("create remote proxy on port %d: %w", port, err)
	}
	return net.JoinHostPort(s.cfg.Host, strconv.Itoa(port)), nil
}

// deleteProxy deletes the proxy called name from the server.
func (s *remoteServer) deleteProxy(ctx context.Context, name string) error {
	_, err := within(ctx, func() (struct{}, error) {
		p := s.client.NewProxy()
		p.Name = name
		return struct{}{}, p.Delete()
	})
	return err
}

// release frees the port and the name of a proxy that no longer exists on the server.
func (s *remoteServer) release(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, n := range s.ports {
		if n == name {
			delete(s.ports, p)
		}
	}
	delete(s.names, name)
}

func (s *remoteServer) dial(addr string) (string, error) {
	if s.cfg.Dial == nil {
		return addr, nil
	}
	out, err := s.cfg.Dial(addr)
	if err != nil {
		return "", fmt.Errorf("map address %s: %w", addr, err)
	}
	return out, nil
}

// healAll resets the whole server (every toxic removed, every proxy started) in one
// call: the server is this run's alone, so there are no other proxies to spare.
func (s *remoteServer) healAll(ctx context.Context, _ []proxy) error {
	_, err := within(ctx, func() (struct{}, error) { return struct{}{}, s.client.ResetState() })
	if err != nil {
		return fmt.Errorf("reset toxiproxy: %w", err)
	}
	return nil
}

// handler forwards to the server's API. A failure to reach it is answered the way
// Toxiproxy answers errors, so toxiproxy-cli shows the reason.
func (s *remoteServer) handler() http.Handler {
	return &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(s.api) },
		Transport: s.forward,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			body, _ := json.Marshal(map[string]any{"error": "reach toxiproxy api: " + err.Error(), "status": http.StatusBadGateway})
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write(body)
		},
	}
}

// close deletes every proxy this server created. A proxy already gone is fine; a server
// that does not answer ends the attempt at once, since every further call would only
// wait out the same timeout, and the error says how many proxies were left.
func (s *remoteServer) close(ctx context.Context) error {
	defer s.forward.CloseIdleConnections()
	s.mu.Lock()
	names := make([]string, 0, len(s.names))
	for n := range s.names {
		names = append(names, n)
	}
	s.mu.Unlock()
	slices.Sort(names)
	var errs []error
	for i, name := range names {
		err := s.deleteProxy(ctx, name)
		switch status := apiStatus(err); {
		case err == nil, status == http.StatusNotFound:
		case status != 0:
			errs = append(errs, fmt.Errorf("delete remote proxy %q: %w", name, err))
		default:
			if left := len(names) - i - 1; left > 0 {
				err = fmt.Errorf("%w (%d more proxies not deleted)", err, left)
			}
			return errors.Join(append(errs, fmt.Errorf("delete remote proxy %q: %w", name, err))...)
		}
	}
	return errors.Join(errs...)
}

// remoteProxy is one proxy on a remote server, known by name; its state lives on the
// server and is read from there every time.
type remoteProxy struct {
	srv  *remoteServer
	name string
	addr string // Remote.Host:port
}

func (p *remoteProxy) listen() string { return p.addr }

// handle is a client proxy for calls that need only the name (toxics, delete).
func (p *remoteProxy) handle() *toxiclient.Proxy {
	h := p.srv.client.NewProxy()
	h.Name = p.name
	return h
}

// update reads the proxy, lets change edit it and saves it back when it changed. The
// client saves whole proxies, so the read keeps the server's listen address and enabled
// state (a teacher may have toggled it through ServeAPI) instead of a stale copy;
// linkEntry.op keeps the harness's own updates from interleaving.
func (p *remoteProxy) update(ctx context.Context, change func(*toxiclient.Proxy) bool) error {
	_, err := within(ctx, func() (struct{}, error) {
		cur, err := p.srv.client.Proxy(p.name)
		if err != nil {
			return struct{}{}, fmt.Errorf("read proxy: %w", err)
		}
		if !change(cur) {
			return struct{}{}, nil
		}
		if err := cur.Save(); err != nil {
			return struct{}{}, fmt.Errorf("save proxy: %w", err)
		}
		return struct{}{}, nil
	})
	return err
}

func (p *remoteProxy) setUpstream(ctx context.Context, upstream string) error {
	return p.update(ctx, func(cur *toxiclient.Proxy) bool {
		cur.Upstream = upstream
		return true
	})
}

func (p *remoteProxy) setEnabled(ctx context.Context, enabled bool) error {
	return p.update(ctx, func(cur *toxiclient.Proxy) bool {
		if cur.Enabled == enabled {
			return false
		}
		cur.Enabled = enabled
		return true
	})
}

func (p *remoteProxy) enabled(ctx context.Context) (bool, error) {
	return within(ctx, func() (bool, error) {
		cur, err := p.srv.client.Proxy(p.name)
		if err != nil {
			return false, err
		}
		return cur.Enabled, nil
	})
}

func (p *remoteProxy) addToxic(ctx context.Context, t Toxic) error {
	var attrs toxiclient.Attributes
	if t.Attributes != nil {
		raw, err := json.Marshal(t.Attributes)
		if err != nil {
			return fmt.Errorf("encode toxic: %w", err)
		}
		// Numbers stay as written: a float64 would round a large limit_data byte count.
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&attrs); err != nil {
			return fmt.Errorf("encode toxic: attributes must be a JSON object: %w", err)
		}
	}
	_, err := within(ctx, func() (*toxiclient.Toxic, error) {
		return p.handle().AddToxic(t.Name, t.Type, t.Stream, float32(t.Toxicity), attrs)
	})
	return err
}

// removeToxic treats the server's 404 as done: the toxic (or the whole proxy, after a
// server restart) is not there, which is what healing wants.
func (p *remoteProxy) removeToxic(ctx context.Context, name string) error {
	_, err := within(ctx, func() (struct{}, error) { return struct{}{}, p.handle().RemoveToxic(name) })
	if err != nil && apiStatus(err) != http.StatusNotFound {
		return err
	}
	return nil
}

func (p *remoteProxy) toxicNames(ctx context.Context) ([]string, error) {
	return within(ctx, func() ([]string, error) {
		cur, err := p.srv.client.Proxy(p.name)
		if err != nil {
			return nil, err
		}
		out := make([]string, 0, len(cur.ActiveToxics))
		for _, t := range cur.ActiveToxics {
			out = append(out, t.Name)
		}
		slices.Sort(out)
		return out, nil
	})
}
