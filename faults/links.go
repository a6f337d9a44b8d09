package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Link is one edge the harness controls: a caller (a component or a whole service)
// reaching one callee instance through a proxy of its own, so that a fault on
// api->db-2 leaves worker->db-2 alone.
type Link struct {
	// From is the caller: a service ("api") when all its instances share the proxy, or a
	// component ("api-1") for per-process edges such as those to the registry.
	From string `json:"from"`
	// FromService is the service From belongs to when From is a component; empty when From
	// is already a service. It lets a target name the caller by service either way.
	FromService string `json:"from_service,omitempty"`
	// To is the callee instance ("db-2").
	To string `json:"to"`
	// ToService is the callee's service ("db"); Add defaults it to To.
	ToService string `json:"to_service"`
	// Upstream is the callee's real address, which the proxy dials.
	Upstream string `json:"upstream"`
}

// Name is the proxy's name, "<from>-><to>", which is also how a fault targets one link.
func (l Link) Name() string { return l.From + "->" + l.To }

// Toxic is one Toxiproxy toxic to put on a link.
type Toxic struct {
	// Name identifies the toxic on its link; AddToxic makes one up when empty.
	Name string
	// Type is a Toxiproxy toxic type: latency, bandwidth, slow_close, timeout, reset_peer,
	// slicer, limit_data.
	Type string
	// Stream is "downstream" (callee to caller, Toxiproxy's default) or "upstream".
	Stream string
	// Toxicity is the share of connections affected; 0 means all of them.
	Toxicity float64
	// Attributes are the toxic's own fields, marshalled to JSON the way Toxiproxy's API
	// takes them (for example map[string]any{"latency": 300}).
	Attributes any
	// TTL, when positive, arms a dead-man timer that removes the toxic if nobody does.
	TTL time.Duration
}

// Option configures Links.
type Option func(*Links)

// WithProber replaces the TCP probe used to measure faults, for example with one that
// sends a real request along the caller's path.
func WithProber(p Prober) Option { return func(l *Links) { l.prober = p } }

// WithProbeTimeout sets how long a probe waits for an answer before it calls the link
// silent (a black hole). Longer is surer, shorter measures faster.
func WithProbeTimeout(d time.Duration) Option { return func(l *Links) { l.probeTimeout = d } }

// WithProbeSamples sets how many probes a latency measurement takes on each path. They
// run concurrently, so more samples cost little time, and the fastest of them is the one
// a slow scheduling hiccup spared.
func WithProbeSamples(n int) Option { return func(l *Links) { l.samples = n } }

// WithGreetingWait sets how long a latency measurement's first, direct probe waits for an
// upstream to speak first (NATS, gRPC) before deciding that it does not. Longer copes
// with a slower machine; it costs that long once per measurement of a silent upstream.
func WithGreetingWait(d time.Duration) Option { return func(l *Links) { l.greetingWait = d } }

// Links is a set of Toxiproxy proxies, one per link: by default in this process, all
// listening on 127.0.0.1; with WithRemote in a Toxiproxy server elsewhere, driven through
// its HTTP API. It is safe for concurrent use.
type Links struct {
	server proxyServer
	remote *Remote
	prober Prober
	// ownProber is true when prober is TCPProbe to the address it is given: only then is
	// each probe known to be one connection through the proxy, to set apart from the
	// system's traffic. A custom prober's requests count as the system's.
	ownProber    bool
	probeTimeout time.Duration
	greetingWait time.Duration
	samples      int
	seq          atomic.Uint64

	mu     sync.Mutex
	links  map[string]*linkEntry
	adding map[string]bool
	// inflight counts Adds talking to the server, so Close never misses a proxy that was
	// being created while it ran.
	inflight sync.WaitGroup
	api      *http.Server
	closed   bool
}

type linkEntry struct {
	link  Link
	proxy proxy
	// op serialises the changes of one proxy's state (upstream, enabled): with a remote
	// server each is a read and a write over HTTP, and two interleaved ones would lose
	// one, or bring a link up that a new holder has just taken down.
	op sync.Mutex
	// holders are the reasons the proxy is down; it comes back up when none remain, so
	// healing one fault never lifts another fault's outage.
	holders map[string]bool
	// timers are dead-man timers keyed by toxic name or "down:"+holder.
	timers map[string]*time.Timer
	// traffic counts what crosses the proxy; nil when its server cannot count.
	traffic *linkTraffic
}

// trafficCounting is a proxy that counts the traffic crossing it.
type trafficCounting interface {
	counter() *linkTraffic
}

// NewLinks starts an empty Toxiproxy server in this process (its logger silenced:
// Toxiproxy logs every connection, which would drown a run's own output) or, with
// WithRemote, checks the remote server's description; it does not contact that server.
func NewLinks(opts ...Option) (*Links, error) {
	l := &Links{
		probeTimeout: time.Second,
		greetingWait: 250 * time.Millisecond,
		samples:      5,
		links:        map[string]*linkEntry{},
		adding:       map[string]bool{},
	}
	for _, o := range opts {
		o(l)
	}
	if l.prober == nil {
		l.ownProber = true
		l.prober = func(ctx context.Context, _ Link, addr string, spec ProbeSpec) Probe {
			return TCPProbe(ctx, addr, spec)
		}
	}
	if l.probeTimeout <= 0 {
		return nil, fmt.Errorf("new links: probe timeout must be positive, got %s", l.probeTimeout)
	}
	if l.greetingWait <= 0 {
		return nil, fmt.Errorf("new links: greeting wait must be positive, got %s", l.greetingWait)
	}
	if l.samples <= 0 {
		return nil, fmt.Errorf("new links: probe samples must be positive, got %d", l.samples)
	}
	if l.remote == nil {
		l.server = newLocalServer()
		return l, nil
	}
	srv, err := newRemoteServer(*l.remote)
	if err != nil {
		return nil, fmt.Errorf("new links: %w", err)
	}
	l.server = srv
	return l, nil
}

// Add creates and starts the proxy for link and returns the address callers should dial
// instead of link.Upstream: "127.0.0.1:<port>" in this process, "<Remote.Host>:<port>"
// on a remote server.
func (l *Links) Add(ctx context.Context, link Link) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("add link: %w", err)
	}
	if link.From == "" || link.To == "" || link.Upstream == "" {
		return "", fmt.Errorf("add link %q: from, to and upstream are required", link.Name())
	}
	if strings.Contains(link.From, "->") || strings.Contains(link.To, "->") {
		return "", fmt.Errorf("add link %q: names must not contain \"->\"", link.Name())
	}
	if _, _, err := net.SplitHostPort(link.Upstream); err != nil {
		return "", fmt.Errorf("add link %q: parse upstream: %w", link.Name(), err)
	}
	if link.ToService == "" {
		link.ToService = link.To
	}
	name := link.Name()
	// The name is reserved, not the lock held, while the server creates the proxy: a
	// remote server answers over HTTP, and All, Get and probes must not wait for it.
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return "", fmt.Errorf("add link %q: links are closed", name)
	}
	if _, dup := l.links[name]; dup || l.adding[name] {
		l.mu.Unlock()
		return "", fmt.Errorf("add link %q: already exists", name)
	}
	l.adding[name] = true
	l.inflight.Add(1)
	l.mu.Unlock()
	defer l.inflight.Done()

	p, err := l.server.create(ctx, name, link.Upstream)
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.adding, name)
	if err != nil {
		return "", fmt.Errorf("add link %q: %w", name, err)
	}
	e := &linkEntry{link: link, proxy: p, holders: map[string]bool{}, timers: map[string]*time.Timer{}}
	if c, ok := p.(trafficCounting); ok {
		e.traffic = c.counter()
	}
	l.links[name] = e
	return p.listen(), nil
}

func (l *Links) entry(name string) (*linkEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.links[name]
	if !ok {
		return nil, fmt.Errorf("find link %q: no such link", name)
	}
	return e, nil
}

// SetUpstream points a link at a new callee address (a restarted instance may come back
// on another port); the proxy keeps its listen address, so callers need not know.
func (l *Links) SetUpstream(ctx context.Context, name, upstream string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set upstream: %w", err)
	}
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return fmt.Errorf("set upstream of %q: %w", name, err)
	}
	l.mu.Lock()
	e, ok := l.links[name]
	l.mu.Unlock()
	if !ok {
		return fmt.Errorf("set upstream of %q: no such link", name)
	}
	e.op.Lock()
	defer e.op.Unlock()
	if err := e.proxy.setUpstream(ctx, upstream); err != nil {
		return fmt.Errorf("set upstream of %q: %w", name, err)
	}
	l.mu.Lock()
	e.link.Upstream = upstream
	l.mu.Unlock()
	return nil
}

// All lists every link, sorted by name.
func (l *Links) All() []Link {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Link, 0, len(l.links))
	for _, e := range l.links {
		out = append(out, e.link)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// Get returns the link called name ("<from>-><to>").
func (l *Links) Get(name string) (Link, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.links[name]
	if !ok {
		return Link{}, false
	}
	return e.link, true
}

// ListenAddr is the proxy address callers dial for the link called name, as Add
// returned it.
func (l *Links) ListenAddr(name string) (string, error) {
	e, err := l.entry(name)
	if err != nil {
		return "", err
	}
	return e.proxy.listen(), nil
}

// Match returns the links from a caller to a callee, sorted by name. from matches a
// link's From or FromService; to matches its To (one instance) or ToService (all of them).
func (l *Links) Match(from, to string) []Link {
	var out []Link
	for _, lk := range l.All() {
		if (lk.From == from || (lk.FromService != "" && lk.FromService == from)) && (lk.To == to || lk.ToService == to) {
			out = append(out, lk)
		}
	}
	return out
}

// AddToxic puts a toxic on the link called name and returns the toxic's name. With a TTL
// the toxic is removed after that long even if nobody heals it.
func (l *Links) AddToxic(ctx context.Context, name string, t Toxic) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("add toxic: %w", err)
	}
	e, err := l.entry(name)
	if err != nil {
		return "", fmt.Errorf("add toxic: %w", err)
	}
	if t.Stream == "" {
		t.Stream = "downstream"
	}
	if t.Stream != "downstream" && t.Stream != "upstream" {
		return "", fmt.Errorf("add toxic to %q: stream must be downstream or upstream, got %q", name, t.Stream)
	}
	if t.Toxicity == 0 {
		t.Toxicity = 1
	}
	if t.Name == "" {
		t.Name = fmt.Sprintf("%s_%s_%d", t.Type, t.Stream, l.seq.Add(1))
	}
	if _, err := json.Marshal(t.Attributes); err != nil {
		return "", fmt.Errorf("add toxic to %q: encode toxic: %w", name, err)
	}
	if err := e.proxy.addToxic(ctx, t); err != nil {
		return "", fmt.Errorf("add toxic %s to %q: %w", t.Type, name, err)
	}
	if t.TTL > 0 {
		toxicName := t.Name
		l.arm(e, toxicName, t.TTL, func() { _ = l.RemoveToxic(context.Background(), name, toxicName) })
	}
	return t.Name, nil
}

// toxicJSON is a filled-in toxic the way Toxiproxy's API takes it.
func toxicJSON(t Toxic) ([]byte, error) {
	body, err := json.Marshal(map[string]any{
		"name": t.Name, "type": t.Type, "stream": t.Stream, "toxicity": t.Toxicity, "attributes": t.Attributes,
	})
	if err != nil {
		return nil, fmt.Errorf("encode toxic: %w", err)
	}
	return body, nil
}

func (l *Links) arm(e *linkEntry, key string, ttl time.Duration, fire func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := e.timers[key]; ok {
		old.Stop()
	}
	e.timers[key] = time.AfterFunc(ttl, fire)
}

func (l *Links) disarm(e *linkEntry, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := e.timers[key]; ok {
		t.Stop()
		delete(e.timers, key)
	}
}

// RemoveToxic takes a toxic off a link. Removing a toxic that is not there is not an
// error, so healing stays idempotent.
func (l *Links) RemoveToxic(ctx context.Context, name, toxic string) error {
	e, err := l.entry(name)
	if err != nil {
		return fmt.Errorf("remove toxic: %w", err)
	}
	l.disarm(e, toxic)
	if err := e.proxy.removeToxic(ctx, toxic); err != nil {
		return fmt.Errorf("remove toxic %s from %q: %w", toxic, name, err)
	}
	return nil
}

// ToxicNames lists the toxics on a link, including any added by hand through the API.
func (l *Links) ToxicNames(name string) ([]string, error) {
	e, err := l.entry(name)
	if err != nil {
		return nil, err
	}
	out, err := e.proxy.toxicNames(context.Background())
	if err != nil {
		return nil, fmt.Errorf("list toxics of %q: %w", name, err)
	}
	return out, nil
}

// Disable takes a link down for holder: the proxy stops listening and drops its
// connections, so callers are refused. The link comes back when every holder has called
// Enable. With a TTL the hold is released after that long even if nobody does.
func (l *Links) Disable(ctx context.Context, name, holder string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("disable link: %w", err)
	}
	e, err := l.entry(name)
	if err != nil {
		return fmt.Errorf("disable link: %w", err)
	}
	e.op.Lock()
	defer e.op.Unlock()
	l.mu.Lock()
	held := e.holders[holder]
	e.holders[holder] = true
	l.mu.Unlock()
	if err := e.proxy.setEnabled(ctx, false); err != nil {
		if !held {
			// The link may still be up; a hold nobody placed must not keep it down later.
			l.mu.Lock()
			delete(e.holders, holder)
			l.mu.Unlock()
		}
		return fmt.Errorf("disable link %q: %w", name, err)
	}
	if ttl > 0 {
		l.arm(e, "down:"+holder, ttl, func() { _ = l.Enable(context.Background(), name, holder) })
	}
	return nil
}

// Enable releases holder's hold on a link and brings the proxy back up on the same
// address once no hold remains. Releasing a hold that is not there is a no-op.
func (l *Links) Enable(ctx context.Context, name, holder string) error {
	e, err := l.entry(name)
	if err != nil {
		return fmt.Errorf("enable link: %w", err)
	}
	l.disarm(e, "down:"+holder)
	e.op.Lock()
	defer e.op.Unlock()
	l.mu.Lock()
	delete(e.holders, holder)
	remaining := len(e.holders)
	l.mu.Unlock()
	if remaining > 0 {
		return nil
	}
	if err := e.proxy.setEnabled(ctx, true); err != nil {
		return fmt.Errorf("enable link %q: %w", name, err)
	}
	return nil
}

// Enabled reports whether a link's proxy is up (accepting connections); false when it
// cannot be told (no such link, or a remote server that does not answer).
func (l *Links) Enabled(name string) bool {
	e, err := l.entry(name)
	if err != nil {
		return false
	}
	on, err := e.proxy.enabled(context.Background())
	return err == nil && on
}

// HealAll removes every toxic from every link (including hand-made ones), releases every
// hold and brings every proxy back up: the last line of defence on every exit path.
func (l *Links) HealAll(ctx context.Context) error {
	l.mu.Lock()
	proxies := make([]proxy, 0, len(l.links))
	for _, e := range l.links {
		for k, t := range e.timers {
			t.Stop()
			delete(e.timers, k)
		}
		clear(e.holders)
		proxies = append(proxies, e.proxy)
	}
	l.mu.Unlock()
	if err := l.server.healAll(ctx, proxies); err != nil {
		return fmt.Errorf("heal all links: %w", err)
	}
	return nil
}

// ServeAPI exposes Toxiproxy's HTTP API on a loopback address (":0" picks a port) so a
// workshop teacher can inject toxics by hand with toxiproxy-cli or curl while a run is
// going; with WithRemote it forwards to the remote server's API. Proxies stay owned by
// the harness: requests that would create, delete or move one are refused. It returns
// the address it listens on.
func (l *Links) ServeAPI(addr string) (string, error) {
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ln, err := listenLoopback(addr)
	if err != nil {
		return "", fmt.Errorf("serve toxiproxy api: %w", err)
	}
	srv := &http.Server{Handler: l.keepCounting(guardAPI(l.server.handler())), ReadHeaderTimeout: 5 * time.Second}
	l.mu.Lock()
	if l.closed || l.api != nil {
		l.mu.Unlock()
		_ = ln.Close()
		return "", fmt.Errorf("serve toxiproxy api: already serving or closed")
	}
	l.api = srv
	l.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), nil
}

// listenLoopback listens on addr only when its host is a loopback address. The hand API
// can reshape every link of the run, so it never faces a network, not even inside a
// container: unlike a service's listener it has no escape hatch.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("parse address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("listen %s: refusing a non-loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// keepCounting puts the traffic counters back after a hand reset through the API (POST
// /reset removes every toxic), so that a reset never leaves a fault's traffic uncounted.
func (l *Links) keepCounting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if r.Method != http.MethodPost || strings.TrimSuffix(r.URL.Path, "/") != "/reset" {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, e := range l.links {
			if lp, ok := e.proxy.(*localProxy); ok && lp.p.Toxics.GetToxic(trafficToxicName) == nil {
				_ = lp.addCounter()
			}
		}
	})
}

// guardAPI keeps hand-injection to toxics and enable/disable: creating, deleting or
// re-pointing a proxy through the API could open a non-loopback listener or break the
// harness's bookkeeping.
func guardAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimSuffix(r.URL.Path, "/")
		parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
		switch {
		case len(parts) == 4 && parts[2] == "toxics" && parts[3] == trafficToxicName && r.Method != http.MethodGet:
			http.Error(w, "the traffic counter is managed by the faultline harness", http.StatusForbidden)
			return
		case r.Method == http.MethodPost && (path == "/proxies" || path == "/populate"):
			http.Error(w, "proxies are managed by the faultline harness", http.StatusForbidden)
			return
		case len(parts) == 2 && parts[0] == "proxies" && r.Method == http.MethodDelete:
			http.Error(w, "proxies are managed by the faultline harness", http.StatusForbidden)
			return
		case len(parts) == 2 && parts[0] == "proxies" && (r.Method == http.MethodPost || r.Method == http.MethodPatch):
			var body map[string]json.RawMessage
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
				http.Error(w, "decode body: "+err.Error(), http.StatusBadRequest)
				return
			}
			for k := range body {
				if k != "enabled" {
					http.Error(w, "only \"enabled\" may be changed on a harness proxy", http.StatusForbidden)
					return
				}
			}
			b, _ := json.Marshal(body)
			r2 := r.Clone(r.Context())
			r2.Body = io.NopCloser(strings.NewReader(string(b)))
			r2.ContentLength = int64(len(b))
			next.ServeHTTP(w, r2)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Close stops every proxy (a remote server's are deleted), every dead-man timer and the
// API server. It does not heal first: stopping a proxy already ends every fault on it.
// A remote server that is already gone makes Close return an error, never hang.
func (l *Links) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for _, e := range l.links {
		for k, t := range e.timers {
			t.Stop()
			delete(e.timers, k)
		}
		if e.traffic != nil {
			e.traffic.release()
		}
	}
	api := l.api
	l.mu.Unlock()
	var errs []error
	if api != nil {
		if err := api.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.inflight.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), remoteCloseTimeout)
	defer cancel()
	if err := l.server.close(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close links: %w", err)
	}
	return nil
}

// Probe sends spec along the link through its proxy, the way a caller would. With
// WithRemote the prober gets Remote.Dial of the proxy's address. When that mapping fails
// the error comes with a failed Probe, so a caller that only looks at the Probe still
// sees why nothing was measured.
func (l *Links) Probe(ctx context.Context, name string, spec ProbeSpec) (Probe, error) {
	e, err := l.entry(name)
	if err != nil {
		return Probe{}, fmt.Errorf("probe link: %w", err)
	}
	addr, err := l.server.dial(e.proxy.listen())
	if err != nil {
		err = fmt.Errorf("probe link %q: %w", name, err)
		return Probe{Outcome: OutcomeFailed, Err: err.Error()}, err
	}
	// A probe through the proxy is the harness's traffic, not the system's: the watches
	// open on the link set it apart, counted from its start so that a watch stopped
	// meanwhile still does. One that never wrote carried nothing.
	var watches []*TrafficWatch
	if e.traffic != nil && l.ownProber {
		watches = e.traffic.open()
	}
	for _, w := range watches {
		w.probed(1)
	}
	p := l.prober(ctx, e.link, addr, l.fill(spec))
	if !p.Wrote {
		for _, w := range watches {
			w.probed(-1)
		}
	}
	return p, nil
}

// ProbeDirect sends spec straight to the link's upstream, bypassing the proxy: the
// baseline a fault's effect is measured against. With WithRemote the prober gets
// Remote.Dial of the upstream, asked again at every probe because a restarted container
// may be published elsewhere; a failed mapping is reported as in Probe.
func (l *Links) ProbeDirect(ctx context.Context, name string, spec ProbeSpec) (Probe, error) {
	e, err := l.entry(name)
	if err != nil {
		return Probe{}, fmt.Errorf("probe upstream: %w", err)
	}
	l.mu.Lock()
	upstream := e.link.Upstream
	l.mu.Unlock()
	addr, err := l.server.dial(upstream)
	if err != nil {
		err = fmt.Errorf("probe upstream of %q: %w", name, err)
		return Probe{Outcome: OutcomeFailed, Err: err.Error()}, err
	}
	return l.prober(ctx, e.link, addr, l.fill(spec)), nil
}

// control starts a bare proxy to the link's upstream on the link's own server, for a
// measurement's baseline: a probe through it crosses the same server, under the same
// load, as a probe through the link's proxy, without the fault. probe sends spec through
// it; stop removes it (Close removes one left behind).
func (l *Links) control(ctx context.Context, name string) (probe func(context.Context, ProbeSpec) Probe, stop func(), err error) {
	e, err := l.entry(name)
	if err != nil {
		return nil, nil, fmt.Errorf("start control proxy: %w", err)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, nil, fmt.Errorf("start control proxy for %q: links are closed", name)
	}
	upstream := e.link.Upstream
	l.inflight.Add(1)
	l.mu.Unlock()
	defer l.inflight.Done()
	listen, remove, err := l.server.control(ctx, fmt.Sprintf("%s~control-%d", name, l.seq.Add(1)), upstream)
	if err != nil {
		return nil, nil, fmt.Errorf("start control proxy for %q: %w", name, err)
	}
	stop = func() { remove(context.WithoutCancel(ctx)) }
	addr, err := l.server.dial(listen)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("start control proxy for %q: %w", name, err)
	}
	probe = func(ctx context.Context, spec ProbeSpec) Probe { return l.prober(ctx, e.link, addr, l.fill(spec)) }
	return probe, stop, nil
}

func (l *Links) fill(spec ProbeSpec) ProbeSpec {
	if spec.Timeout <= 0 {
		spec.Timeout = l.probeTimeout
	}
	if spec.Payload == nil {
		spec.Payload = DefaultProbePayload
	}
	return spec
}
