package topology

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/faultline-dev/faultline/runtime/ports"
)

// Plan is a topology laid out for one run: every instance with its ports and directory,
// every proxy with the callee address it forwards to, and the start order. The harness
// creates the proxies (SetListen records where each listens), renders the templates and
// starts the instances in Order.
type Plan struct {
	topo      *Topology
	runDir    string
	network   bool // InNetwork
	instances map[string]*Instance
	order     []string
	proxies   []*Proxy
}

// Instance is one process of a component (or one external address).
type Instance struct {
	Name      string
	Component string
	// Replica counts from 1.
	Replica int
	// Ports maps each named port to the port allocated on 127.0.0.1.
	Ports map[string]int
	// Dir is the instance's run directory ({{.Dir}}).
	Dir      string
	External bool
	// Address is an external component's host:port.
	Address string
}

// NetAddr is the address its peers dial on a container network: "<instance>:<port>" (the
// instance's name is its alias there), or an external component's address.
func (i *Instance) NetAddr(port string) (string, error) {
	if i.External {
		return i.Address, nil
	}
	n, ok := i.Ports[port]
	if !ok {
		return "", fmt.Errorf("%s has no port %q (ports: %s)", i.Name, port, strings.Join(sortedKeys(i.Ports), ", "))
	}
	return net.JoinHostPort(i.Name, strconv.Itoa(n)), nil
}

// Addr is the instance's own address for port: host:port on 127.0.0.1, or an external
// component's address.
func (i *Instance) Addr(port string) (string, error) {
	if i.External {
		return i.Address, nil
	}
	n, ok := i.Ports[port]
	if !ok {
		return "", fmt.Errorf("%s has no port %q (ports: %s)", i.Name, port, strings.Join(sortedKeys(i.Ports), ", "))
	}
	return net.JoinHostPort(Host, strconv.Itoa(n)), nil
}

// Proxy is one Toxiproxy proxy: a caller reaching one callee instance.
type Proxy struct {
	// From is the calling component (all its instances share the proxy) or Client.
	From string
	// To is the callee instance and ToComponent its component.
	To, ToComponent string
	// Port is the callee port the proxy forwards to, Upstream its real address.
	Port, Upstream string
	// Listen is where callers dial, known once the proxy exists (SetListen).
	Listen string
	// HostListen is where the harness and the load generator dial it when that differs
	// from Listen (a proxy in a container: SetHostListen); empty means Listen.
	HostListen string
}

// Name is the proxy's name and a link fault's target: "<from>-><to instance>".
func (p Proxy) Name() string { return p.From + "->" + p.To }

// PlanOption configures NewPlan.
type PlanOption func(*Plan)

// InNetwork lays the topology out for containers on one network: each component listens
// on 0.0.0.0 (its container is the boundary) on its allocated port, published on the same
// port of 127.0.0.1, and its templates reach peers by instance name ("api-1:20001") and
// proxies at their address on that network. Readiness checks, metrics and the load
// generator run on the host and still see 127.0.0.1 (RenderHost, RenderClient).
func InNetwork() PlanOption { return func(p *Plan) { p.network = true } }

// PortsFunc allocates n free ports on 127.0.0.1.
type PortsFunc func(n int) ([]int, error)

// NewPlan lays t out under runDir with ports from alloc (ports.Free when nil). t should be
// valid (Validate returns nothing); a plan of an invalid topology is refused.
func NewPlan(t *Topology, runDir string, alloc PortsFunc, opts ...PlanOption) (*Plan, error) {
	if t == nil {
		return nil, errors.New("plan topology: no topology")
	}
	if alloc == nil {
		alloc = ports.Free
	}
	total := 0
	for _, c := range t.Components {
		if !c.External() {
			total += len(c.Ports) * len(c.Instances())
		}
	}
	ports, err := alloc(total)
	if err != nil {
		return nil, fmt.Errorf("plan topology: %w", err)
	}
	if len(ports) != total {
		return nil, fmt.Errorf("plan topology: allocated %d ports, want %d", len(ports), total)
	}
	p := &Plan{topo: t, runDir: runDir, instances: map[string]*Instance{}}
	for _, o := range opts {
		o(p)
	}
	for _, c := range t.Components {
		for r, name := range c.Instances() {
			inst := &Instance{Name: name, Component: c.Name, Replica: r + 1, Ports: map[string]int{},
				Dir: filepath.Join(runDir, "components", name), External: c.External(), Address: c.Address}
			if !c.External() {
				for _, port := range c.Ports {
					inst.Ports[port], ports = ports[0], ports[1:]
				}
			}
			p.instances[name] = inst
		}
	}
	for _, l := range t.Links {
		to, ok := t.Component(l.To)
		if !ok {
			return nil, fmt.Errorf("plan topology: link %q: no component %q", l.Name(), l.To)
		}
		port := l.Port
		if port == "" && len(to.Ports) == 1 {
			port = to.Ports[0]
		}
		for _, name := range to.Instances() {
			upstream := p.instances[name].Addr
			if p.network {
				upstream = p.instances[name].NetAddr // the proxy dials from the network too
			}
			up, err := upstream(port)
			if err != nil {
				return nil, fmt.Errorf("plan topology: link %q: %w", l.Name(), err)
			}
			p.proxies = append(p.proxies, &Proxy{From: l.From, To: name, ToComponent: to.Name, Port: port, Upstream: up})
		}
	}
	p.order = startOrder(t)
	return p, nil
}

// placeholderPlan is a plan with made-up ports and proxy addresses, for validating
// templates without allocating anything.
func (t *Topology) placeholderPlan() (*Plan, error) {
	next := 20000
	p, err := NewPlan(t, filepath.Join(string(filepath.Separator), "run"), func(n int) ([]int, error) {
		out := make([]int, n)
		for i := range out {
			out[i] = next
			next++
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	for _, px := range p.proxies {
		px.Listen = net.JoinHostPort(Host, strconv.Itoa(next))
		next++
	}
	return p, nil
}

// startOrder puts callees before their callers (declaration order otherwise); members of
// a cycle keep declaration order after everything that can be ordered.
func startOrder(t *Topology) []string {
	deps := map[string][]string{} // caller -> callees
	for _, l := range t.Links {
		if l.From != Client {
			deps[l.From] = append(deps[l.From], l.To)
		}
	}
	done := map[string]bool{}
	var order []string
	for progress := true; progress; {
		progress = false
		for _, c := range t.Components {
			if done[c.Name] {
				continue
			}
			ready := true
			for _, d := range deps[c.Name] {
				ready = ready && done[d]
			}
			if ready {
				done[c.Name], progress = true, true
				order = append(order, c.Name)
			}
		}
	}
	for _, c := range t.Components {
		if !done[c.Name] {
			order = append(order, c.Name)
		}
	}
	return order
}

// Topology returns the topology the plan lays out.
func (p *Plan) Topology() *Topology { return p.topo }

// RunDir is the run directory the plan's instance directories are under.
func (p *Plan) RunDir() string { return p.runDir }

// Order lists the components in start order: callees first.
func (p *Plan) Order() []string { return slices.Clone(p.order) }

// Instances lists the instances of a component (or the instance itself), or nil.
func (p *Plan) Instances(component string) []*Instance {
	if c, ok := p.topo.Component(component); ok {
		out := make([]*Instance, 0, len(c.Instances()))
		for _, n := range c.Instances() {
			out = append(out, p.instances[n])
		}
		return out
	}
	if i, ok := p.instances[component]; ok {
		return []*Instance{i}
	}
	return nil
}

// Instance returns the instance called name.
func (p *Plan) Instance(name string) (*Instance, bool) {
	i, ok := p.instances[name]
	return i, ok
}

// Proxies lists the proxies to create, in link order.
func (p *Plan) Proxies() []*Proxy { return slices.Clone(p.proxies) }

// SetListen records where the proxy called name listens.
func (p *Plan) SetListen(name, addr string) error {
	for _, px := range p.proxies {
		if px.Name() == name {
			px.Listen = addr
			return nil
		}
	}
	return fmt.Errorf("set proxy address: no proxy %q", name)
}

// proxyFor is the proxy a caller uses to reach instance on port, if a link puts one there.
func (p *Plan) proxyFor(caller, instance, port string) *Proxy {
	for _, px := range p.proxies {
		if px.From == caller && px.To == instance && px.Port == port {
			return px
		}
	}
	return nil
}

// Render executes text as a template seen by instance (one of the plan's instances),
// for its own command line, environment and files.
func (p *Plan) Render(instance, text string) (string, error) {
	return p.renderAs(instance, text, false)
}

// RenderHost executes text as a template about instance seen from the harness's host:
// its readiness check and metrics URL. It differs from Render only InNetwork, where
// .Self is the published 127.0.0.1 address instead of the in-container 0.0.0.0 one.
func (p *Plan) RenderHost(instance, text string) (string, error) {
	return p.renderAs(instance, text, true)
}

func (p *Plan) renderAs(instance, text string, host bool) (string, error) {
	inst, ok := p.instances[instance]
	if !ok {
		return "", fmt.Errorf("render template: no instance %q", instance)
	}
	return render(text, &Data{plan: p, caller: inst.Component, self: inst, host: host})
}

// SetHostListen records where the harness reaches the proxy called name, when that is
// not its Listen address (a proxy inside a container).
func (p *Plan) SetHostListen(name, addr string) error {
	for _, px := range p.proxies {
		if px.Name() == name {
			px.HostListen = addr
			return nil
		}
	}
	return fmt.Errorf("set proxy host address: no proxy %q", name)
}

// RenderClient executes text as a template seen by the load generator (the caller
// Client): .Addr gives the proxy when a link from client is declared. The load
// generator's own template functions ({{.Seq}}, {{.Client}}, {{.Key}}, {{.Token}},
// {{.Rand lo hi}}, {{.Pick ...}}) are left in place for it to fill per request.
func (p *Plan) RenderClient(text string) (string, error) {
	return render(text, &ClientData{Data: Data{plan: p, caller: Client, host: true}})
}

func render(text string, data any) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	tm, err := template.New("t").Option("missingkey=error").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return "", fmt.Errorf("parse template: %w", trimTemplateErr(err))
	}
	var b bytes.Buffer
	if err := tm.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render template: %w", trimTemplateErr(err))
	}
	return b.String(), nil
}

// trimTemplateErr drops text/template's "template: t:1:2: executing "t" at <...>:"
// prefix down to the reason, which is what a scenario author needs.
func trimTemplateErr(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "error calling "); i >= 0 {
		if j := strings.Index(msg[i:], ": "); j >= 0 {
			return errors.New(msg[i+j+2:])
		}
	}
	msg = strings.TrimPrefix(msg, "template: ")
	return errors.New(msg)
}

// templateFuncs split an address for configurations that want host and port apart
// ("redis_host": "{{host (.Addr "redis" "redis")}}").
var templateFuncs = template.FuncMap{
	"host": func(addr string) (string, error) {
		h, _, err := net.SplitHostPort(addr)
		return h, err
	},
	"port": func(addr string) (string, error) {
		_, port, err := net.SplitHostPort(addr)
		return port, err
	},
}

// Data is what a component's templates see.
type Data struct {
	plan   *Plan
	caller string
	self   *Instance
	// host is set when the text is used on the harness's host (readiness, metrics, the
	// load), not inside the component.
	host bool
}

// inside reports whether the text is read inside a container on the run's network.
func (d *Data) inside() bool { return d.plan.network && !d.host }

// Bind is the host the component listens on: 127.0.0.1, or 0.0.0.0 inside a container
// (whose network is the boundary; the port is published on 127.0.0.1 only).
func (d *Data) Bind() string {
	if d.inside() {
		return "0.0.0.0"
	}
	return Host
}

// Dir is the instance's run directory.
func (d *Data) Dir() string {
	if d.self == nil {
		return d.plan.runDir
	}
	return d.self.Dir
}

// Name is the instance's name (web, or web-2 with replicas).
func (d *Data) Name() string {
	if d.self == nil {
		return Client
	}
	return d.self.Name
}

// Replica is the instance's number, from 1.
func (d *Data) Replica() int {
	if d.self == nil {
		return 0
	}
	return d.self.Replica
}

// Port is the instance's own allocated port called name.
func (d *Data) Port(name string) (int, error) {
	if d.self == nil {
		return 0, errors.New(".Port is a component's own port; the load generator has none")
	}
	n, ok := d.self.Ports[name]
	if !ok {
		return 0, fmt.Errorf("%s has no port %q (ports: %s)", d.self.Component, name, strings.Join(sortedKeys(d.self.Ports), ", "))
	}
	return n, nil
}

// Self is the instance's own listen address for the port called name: 127.0.0.1:port, or
// 0.0.0.0:port inside a container (InNetwork).
func (d *Data) Self(name string) (string, error) {
	n, err := d.Port(name)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(d.Bind(), strconv.Itoa(n)), nil
}

// Addr is the host:port the caller dials to reach target (a component with one instance,
// or an instance) on port: the proxy when a link caller->target is declared, else the
// real address. An external target's port may be "".
func (d *Data) Addr(target, port string) (string, error) {
	if n := len(d.plan.Instances(target)); n > 1 {
		return "", fmt.Errorf("%s has %d instances: use .Addrs %q %q, or name one such as %s-1", target, n, target, port, target)
	}
	addrs, err := d.addrs(target, port)
	if err != nil {
		return "", err
	}
	if len(addrs) != 1 {
		return "", fmt.Errorf("%s has %d instances: use .Addrs %q %q, or name one such as %s-1", target, len(addrs), target, port, target)
	}
	return addrs[0], nil
}

// Addrs is Addr for every instance of target, in replica order, for configurations that
// list upstreams ({{range .Addrs "api" "http"}}server {{.}};{{end}}).
func (d *Data) Addrs(target, port string) ([]string, error) { return d.addrs(target, port) }

func (d *Data) addrs(target, port string) ([]string, error) {
	insts := d.plan.Instances(target)
	if len(insts) == 0 {
		return nil, fmt.Errorf("no component %q (components: %s)", target, strings.Join(d.plan.topo.Names(), ", "))
	}
	out := make([]string, 0, len(insts))
	for _, inst := range insts {
		if px := d.plan.proxyFor(d.caller, inst.Name, port); px != nil || (inst.External && d.plan.proxyFor(d.caller, inst.Name, "") != nil) {
			if px == nil {
				px = d.plan.proxyFor(d.caller, inst.Name, "")
			}
			if px.Listen == "" {
				return nil, fmt.Errorf("the proxy %s does not exist yet", px.Name())
			}
			if d.host && px.HostListen != "" {
				out = append(out, px.HostListen)
			} else {
				out = append(out, px.Listen)
			}
			continue
		}
		addr := inst.Addr
		if d.inside() {
			addr = inst.NetAddr
		}
		a, err := addr(port)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ClientData is what the load's and checks' templates see: Data for the caller Client,
// plus the load generator's per-request values written back as templates.
type ClientData struct{ Data }

// Seq is left for the load generator: {{.Seq}}.
func (ClientData) Seq() string { return "{{.Seq}}" }

// Client is left for the load generator: {{.Client}}.
func (ClientData) Client() string { return "{{.Client}}" }

// Key is left for the load generator: {{.Key}}.
func (ClientData) Key() string { return "{{.Key}}" }

// Token is left for the load generator: {{.Token}}.
func (ClientData) Token() string { return "{{.Token}}" }

// Rand is left for the load generator: {{.Rand lo hi}}.
func (ClientData) Rand(lo, hi int) string { return fmt.Sprintf("{{.Rand %d %d}}", lo, hi) }

// Pick is left for the load generator: {{.Pick "a" "b"}}.
func (ClientData) Pick(choices ...string) string {
	q := make([]string, len(choices))
	for i, c := range choices {
		q[i] = strconv.Quote(c)
	}
	return "{{.Pick " + strings.Join(q, " ") + "}}"
}

// CheckClientTemplate renders text as the load generator would see it, with placeholder
// ports, so that a scenario's load targets and probes can be validated before a run.
func (t *Topology) CheckClientTemplate(text string) (string, error) {
	p, err := t.placeholderPlan()
	if err != nil {
		return "", err
	}
	return p.RenderClient(text)
}
