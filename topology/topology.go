// Package topology describes a user's own system as Faultline's target: the components to
// start (or, for an external one, its address), the named ports the harness allocates for
// them on 127.0.0.1, how to tell each one is ready, its metrics endpoint, and the links a
// caller reaches a callee through, each of which gets a Toxiproxy proxy so that a link
// fault lands on that edge only.
//
// The package owns the format, its validation (every problem at once, each with the path
// of the offending value so that the scenario decoder can place it at file:line:col), the
// templates components and load targets are written with ({{.Addr "api" "http"}}), and the
// plan a runner follows: instances, ports, proxies and the start order (callees first).
// It starts nothing itself; the harness does.
package topology

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Client is the name of the harness's own load generator as a caller: a link
// `from: client` puts a proxy between the load and a component, for client-side faults.
const Client = "client"

// Host is the only address components are given and proxies listen on.
const Host = "127.0.0.1"

// Limits of a topology: beyond them a file is a mistake on one machine.
const (
	MaxComponents = 64
	MaxReplicas   = 9
	MaxPorts      = 16
	// DefaultReadyTimeout bounds a component's readiness wait when ready.timeout is unset.
	DefaultReadyTimeout = 20 * time.Second
)

// Topology is a user's system: its components and the links between them.
type Topology struct {
	Components []Component `yaml:"components" json:"components" doc:"the processes to start (command) or already running (address)" required:"true"`
	Links      []Link      `yaml:"links,omitempty" json:"links,omitempty" doc:"caller->callee edges; each gets a Toxiproxy proxy so a link fault lands on that edge only"`

	// Base is the directory relative template paths are resolved against: the topology
	// file's, or the scenario's for an inline topology.
	Base string `yaml:"-" json:"-"`
}

// Component is one process of the system, or one external address.
type Component struct {
	Name     string            `yaml:"name" json:"name" doc:"unique name; also a fault and check target (crash api, web->api)" required:"true"`
	Command  string            `yaml:"command,omitempty" json:"command,omitempty" doc:"executable to start (a path, or a name looked up in PATH); a template"`
	Args     []string          `yaml:"args,omitempty" json:"args,omitempty" doc:"arguments; each is a template such as {{.Port \"http\"}}"`
	Env      map[string]string `yaml:"env,omitempty" json:"env,omitempty" doc:"environment added to the harness's; values are templates"`
	Dir      string            `yaml:"dir,omitempty" json:"dir,omitempty" doc:"working directory, default the component's run directory {{.Dir}}; a template"`
	Files    []File            `yaml:"files,omitempty" json:"files,omitempty" doc:"configuration files rendered from templates into the component's run directory before it starts"`
	Ports    []string          `yaml:"ports,omitempty" json:"ports,omitempty" doc:"named ports the harness allocates on 127.0.0.1, read with {{.Port \"name\"}}"`
	Replicas int               `yaml:"replicas,omitempty" json:"replicas,omitempty" doc:"instances to start, named <name>-1..<name>-N when above 1; default 1" minimum:"1"`
	Ready    *Ready            `yaml:"ready,omitempty" json:"ready,omitempty" doc:"how to tell the component is ready; callers start only after"`
	Metrics  *Metrics          `yaml:"metrics,omitempty" json:"metrics,omitempty" doc:"a Prometheus endpoint to scrape during the run, for metric checks"`
	Address  string            `yaml:"address,omitempty" json:"address,omitempty" doc:"host:port of an external component that is already running; only link faults apply to it"`
	Image    string            `yaml:"image,omitempty" json:"image,omitempty" doc:"Docker runtime: an image present on this machine to run the command in (nothing is pulled)"`
	Build    *Build            `yaml:"build,omitempty" json:"build,omitempty" doc:"Docker runtime: build the component's image FROM scratch from executables installed on this machine"`
}

// Build makes a component's image FROM scratch out of what is installed on the host, for
// machines where no image can be pulled: each binary with the shared libraries it loads.
type Build struct {
	Binaries []string `yaml:"binaries" json:"binaries" doc:"absolute paths of host executables, copied to the same path with their shared libraries" required:"true"`
	Files    []string `yaml:"files,omitempty" json:"files,omitempty" doc:"extra host files or directories (absolute paths) copied to the same path"`
	Dirs     []string `yaml:"dirs,omitempty" json:"dirs,omitempty" doc:"empty directories the software expects, such as /var/lib/nginx"`
}

// Containerised reports whether c says how to run it as a container (image or build).
func (c Component) Containerised() bool { return c.Image != "" || c.Build != nil }

// File is a configuration file rendered before a component starts.
type File struct {
	Template string `yaml:"template,omitempty" json:"template,omitempty" doc:"template file, relative to the topology file (or the scenario for an inline topology)"`
	Content  string `yaml:"content,omitempty" json:"content,omitempty" doc:"the template itself, instead of a file"`
	Path     string `yaml:"path" json:"path" doc:"where to write it, relative to the component's run directory" required:"true"`
}

// Ready is a readiness check: exactly one of HTTP, TCP and Command.
type Ready struct {
	HTTP    string        `yaml:"http,omitempty" json:"http,omitempty" doc:"URL to GET until it answers with status; a template such as http://{{.Self \"http\"}}/"`
	Status  int           `yaml:"status,omitempty" json:"status,omitempty" doc:"status the HTTP check waits for; default any 2xx"`
	TCP     string        `yaml:"tcp,omitempty" json:"tcp,omitempty" doc:"host:port to connect to; a template such as {{.Self \"redis\"}}"`
	Command []string      `yaml:"command,omitempty" json:"command,omitempty" doc:"argv run until it exits 0; each a template"`
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty" doc:"how long to wait, default 20s"`
}

// Metrics is a component's Prometheus endpoint.
type Metrics struct {
	URL string `yaml:"url" json:"url" doc:"metrics URL, a template such as http://{{.Self \"http\"}}/metrics" required:"true"`
}

// Link is a caller->callee edge through a proxy.
type Link struct {
	From string `yaml:"from" json:"from" doc:"caller component, or client for the load generator" required:"true"`
	To   string `yaml:"to" json:"to" doc:"callee component" required:"true"`
	Port string `yaml:"port,omitempty" json:"port,omitempty" doc:"callee's named port; may be omitted when it has one port, or is external"`
}

// Name is the link as a fault targets it: "from->to".
func (l Link) Name() string { return l.From + "->" + l.To }

// External reports whether c is already running elsewhere (an address, no command).
func (c Component) External() bool { return c.Address != "" }

// Instances names c's instances: the component's own name, or <name>-1..<name>-N.
func (c Component) Instances() []string {
	if c.Replicas <= 1 {
		return []string{c.Name}
	}
	out := make([]string, c.Replicas)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", c.Name, i+1)
	}
	return out
}

// Component returns the component called name.
func (t *Topology) Component(name string) (Component, bool) {
	if t == nil {
		return Component{}, false
	}
	for _, c := range t.Components {
		if c.Name == name {
			return c, true
		}
	}
	return Component{}, false
}

// ComponentOf returns the component an instance (or component) name belongs to.
func (t *Topology) ComponentOf(instance string) (Component, bool) {
	if t == nil {
		return Component{}, false
	}
	for _, c := range t.Components {
		if slices.Contains(c.Instances(), instance) || c.Name == instance {
			return c, true
		}
	}
	return Component{}, false
}

// Names lists every component name, in declaration order.
func (t *Topology) Names() []string {
	if t == nil {
		return nil
	}
	out := make([]string, 0, len(t.Components))
	for _, c := range t.Components {
		out = append(out, c.Name)
	}
	return out
}

// HasLink reports whether a link from caller to the component callee is declared.
func (t *Topology) HasLink(from, to string) bool {
	if t == nil {
		return false
	}
	for _, l := range t.Links {
		if l.From == from && l.To == to {
			return true
		}
	}
	return false
}

// LinkNames lists the declared links as "from->to".
func (t *Topology) LinkNames() []string {
	if t == nil {
		return nil
	}
	out := make([]string, 0, len(t.Links))
	for _, l := range t.Links {
		out = append(out, l.Name())
	}
	return out
}

// Problem is one thing wrong with a topology: Path locates the value (strings are mapping
// keys, ints list indexes, from the topology's root), so the decoder that read the file
// can give its line and column.
type Problem struct {
	Path []any
	Msg  string
	Hint string
}

// Error formats the problem with its path.
func (p Problem) Error() string {
	var b strings.Builder
	for _, e := range p.Path {
		switch e := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, e)
		}
	}
	if b.Len() == 0 {
		return p.Msg
	}
	return b.String() + ": " + p.Msg
}
