package topology

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

type problems struct{ list []Problem }

func (ps *problems) add(path []any, hint, format string, args ...any) {
	ps.list = append(ps.list, Problem{Path: slices.Clone(path), Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// Validate reports every problem of t at once: names, ports, replicas, links naming
// components that do not exist, external components with a command, readiness checks,
// and templates that do not parse or name a component or port that does not exist
// (checked by rendering every template against a plan with placeholder ports).
func (t *Topology) Validate() []Problem {
	ps := &problems{}
	if t == nil {
		ps.add(nil, "", "topology is empty")
		return ps.list
	}
	switch {
	case len(t.Components) == 0:
		ps.add([]any{"components"}, "declare at least one component: {name: web, command: ..., ports: [http]}", "topology has no components")
	case len(t.Components) > MaxComponents:
		ps.add([]any{"components"}, "", "%d components is more than the limit of %d", len(t.Components), MaxComponents)
	}
	instances := map[string]string{} // instance name -> component that owns it
	for i, c := range t.Components {
		p := []any{"components", i}
		t.component(ps, p, c, instances)
	}
	t.links(ps)
	if len(ps.list) == 0 {
		t.templates(ps)
	}
	return ps.list
}

func (t *Topology) component(ps *problems, p []any, c Component, instances map[string]string) {
	with := func(k ...any) []any { return append(slices.Clone(p), k...) }
	switch {
	case c.Name == "":
		ps.add(with("name"), "name it after what it is, such as web or api", "name is empty")
	case c.Name == Client:
		ps.add(with("name"), "client is the load generator's name as a caller; call the component something else", "name %q is reserved", c.Name)
	case !nameRE.MatchString(c.Name) || strings.Contains(c.Name, "->"):
		ps.add(with("name"), "use lower-case letters, digits, '.', '_' and '-'", "name %q is not a valid component name", c.Name)
	}
	if c.Replicas < 0 || c.Replicas > MaxReplicas {
		ps.add(with("replicas"), fmt.Sprintf("use 1 to %d", MaxReplicas), "replicas %d is out of range", c.Replicas)
	}
	for _, inst := range c.Instances() {
		if c.Name == "" {
			break
		}
		if owner, dup := instances[inst]; dup {
			if owner == c.Name {
				ps.add(with("name"), "give each component its own name", "component %q is declared twice", c.Name)
			} else {
				ps.add(with("name"), "rename one of them", "instance %q of %q clashes with component %q", inst, c.Name, owner)
			}
			break
		}
		instances[inst] = c.Name
	}
	if c.External() {
		if c.Command != "" || len(c.Args) > 0 || len(c.Files) > 0 || c.Ready != nil || c.Replicas > 1 || len(c.Env) > 0 || c.Dir != "" || c.Containerised() {
			ps.add(with("address"), "an external component is already running: give it address only, or remove address and give a command", "component %q has both an address and something to start", c.Name)
		}
		if !strings.HasPrefix(c.Address, "127.0.0.1:") && !strings.HasPrefix(c.Address, "localhost:") && !strings.HasPrefix(c.Address, "[::1]:") {
			ps.add(with("address"), "Faultline only sends traffic to this machine: use 127.0.0.1:<port>", "address %q is not a loopback host:port", c.Address)
		}
		if len(c.Ports) > 0 {
			ps.add(with("ports"), "an external component's port is its address", "component %q is external and cannot have allocated ports", c.Name)
		}
		return
	}
	if strings.TrimSpace(c.Command) == "" {
		ps.add(with("command"), "give the executable to start, or address: host:port for a component that is already running", "component %q has neither command nor address", c.Name)
	}
	if c.Image != "" && c.Build != nil {
		ps.add(with("image"), "keep image for an image this machine has, or build to make one from host binaries", "component %q has both image and build", c.Name)
	}
	if b := c.Build; b != nil {
		if len(b.Binaries) == 0 {
			ps.add(with("build", "binaries"), "list the executables the command needs, such as /usr/sbin/nginx", "build has no binaries")
		}
		for _, list := range []struct {
			key   string
			paths []string
		}{{"binaries", b.Binaries}, {"files", b.Files}, {"dirs", b.Dirs}} {
			for j, path := range list.paths {
				if !filepath.IsAbs(path) {
					ps.add(with("build", list.key, j), "paths in an image are absolute, the same as on this machine", "%q is not an absolute path", path)
				}
			}
		}
	}
	if len(c.Ports) > MaxPorts {
		ps.add(with("ports"), "", "%d ports is more than the limit of %d", len(c.Ports), MaxPorts)
	}
	seen := map[string]bool{}
	for j, port := range c.Ports {
		switch {
		case !nameRE.MatchString(port):
			ps.add(with("ports", j), "name ports after their use, such as http or admin", "port name %q is not valid", port)
		case seen[port]:
			ps.add(with("ports", j), "", "port %q is declared twice", port)
		}
		seen[port] = true
	}
	for j, f := range c.Files {
		fp := with("files", j)
		switch {
		case f.Template == "" && f.Content == "":
			ps.add(fp, "give template: file.tmpl, or content: the text itself", "file has neither template nor content")
		case f.Template != "" && f.Content != "":
			ps.add(append(fp, "content"), "keep one of template and content", "file has both template and content")
		case f.Template != "":
			if _, err := os.Stat(t.resolve(f.Template)); err != nil {
				ps.add(append(fp, "template"), "template paths are relative to the topology file (or the scenario, for an inline topology)", "template %q cannot be read: %v", f.Template, shortErr(err))
			}
		}
		if clean := filepath.Clean(f.Path); f.Path == "" || filepath.IsAbs(f.Path) || clean == ".." || strings.HasPrefix(clean, "../") {
			ps.add(append(fp, "path"), "files are written inside the component's run directory {{.Dir}}", "path %q is not a relative path inside the run directory", f.Path)
		}
	}
	if r := c.Ready; r != nil {
		n := 0
		for _, set := range []bool{r.HTTP != "", r.TCP != "", len(r.Command) > 0} {
			if set {
				n++
			}
		}
		if n != 1 {
			ps.add(with("ready"), `give exactly one of http: URL, tcp: host:port and command: [argv]`, "ready has %d checks, want exactly one", n)
		}
		if r.Status != 0 && (r.Status < 100 || r.Status > 599) {
			ps.add(with("ready", "status"), "", "status %d is not an HTTP status", r.Status)
		}
		if r.Status != 0 && r.HTTP == "" {
			ps.add(with("ready", "status"), "status goes with http", "status without http")
		}
	}
	if c.Metrics != nil && c.Metrics.URL == "" {
		ps.add(with("metrics", "url"), "such as http://{{.Self \"http\"}}/metrics", "metrics url is empty")
	}
}

func shortErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

func (t *Topology) resolve(p string) string {
	if filepath.IsAbs(p) || t.Base == "" {
		return p
	}
	return filepath.Join(t.Base, p)
}

func (t *Topology) links(ps *problems) {
	names := t.Names()
	seen := map[string]int{}
	for i, l := range t.Links {
		p := []any{"links", i}
		with := func(k string) []any { return append(slices.Clone(p), k) }
		from, fromOK := t.Component(l.From)
		if l.From != Client && !fromOK && l.From != "" {
			ps.add(with("from"), choiceHint(l.From, append([]string{Client}, names...)), "link from %q: no such component", l.From)
		}
		if fromOK && from.External() {
			ps.add(with("from"), "the harness cannot make an external component dial a proxy; only links to it can be faulted", "link from %q: %q is external", l.From, l.From)
		}
		to, toOK := t.Component(l.To)
		if !toOK && l.To != "" {
			ps.add(with("to"), choiceHint(l.To, names), "link to %q: no such component", l.To)
		}
		if l.From != "" && l.From == l.To {
			ps.add(with("to"), "a link joins two different components", "link %q starts and ends at the same component", l.Name())
		}
		if j, dup := seen[l.Name()]; dup {
			ps.add(p, "declare each caller->callee pair once", "link %q is already declared by links[%d]", l.Name(), j)
		}
		seen[l.Name()] = i
		if !toOK || to.External() {
			if toOK && l.Port != "" {
				ps.add(with("port"), "an external component has one address; remove port", "link to external %q names port %q", l.To, l.Port)
			}
			continue
		}
		switch {
		case l.Port == "" && len(to.Ports) != 1:
			ps.add(p, fmt.Sprintf("%q has ports %s; name one with port:", l.To, strings.Join(to.Ports, ", ")), "link %q needs a port", l.Name())
		case l.Port != "" && !slices.Contains(to.Ports, l.Port):
			ps.add(with("port"), choiceHint(l.Port, to.Ports), "link %q: %q has no port %q", l.Name(), l.To, l.Port)
		}
	}
}

// templates renders every template of every component against a placeholder plan, so a
// template that names a missing component or port is refused before anything starts.
func (t *Topology) templates(ps *problems) {
	plan, err := t.placeholderPlan()
	if err != nil {
		ps.add(nil, "", "%v", err)
		return
	}
	for i, c := range t.Components {
		if c.External() {
			continue
		}
		inst := c.Instances()[0]
		p := []any{"components", i}
		with := func(k ...any) []any { return append(slices.Clone(p), k...) }
		check := func(path []any, text string) {
			if _, err := plan.Render(inst, text); err != nil {
				ps.add(path, templateHint, "%v", err)
			}
		}
		check(with("command"), c.Command)
		check(with("dir"), c.Dir)
		for j, a := range c.Args {
			check(with("args", j), a)
		}
		for _, k := range sortedKeys(c.Env) {
			check(with("env", k), c.Env[k])
		}
		for j, f := range c.Files {
			text := f.Content
			if f.Template != "" {
				b, err := os.ReadFile(t.resolve(f.Template))
				if err != nil {
					continue // reported above
				}
				text = string(b)
			}
			if _, err := plan.Render(inst, text); err != nil {
				key := "content"
				if f.Template != "" {
					key = "template"
				}
				ps.add(with("files", j, key), templateHint, "%s: %v", f.Path, err)
			}
		}
		if r := c.Ready; r != nil {
			check(with("ready", "http"), r.HTTP)
			check(with("ready", "tcp"), r.TCP)
			for j, a := range r.Command {
				check(with("ready", "command", j), a)
			}
		}
		if c.Metrics != nil {
			check(with("metrics", "url"), c.Metrics.URL)
		}
	}
}

const templateHint = `templates see .Dir, .Name, .Port "p", .Self "p", .Addr "component" "p" and .Addrs "component" "p"`

// choiceHint suggests the closest of choices, or lists them.
func choiceHint(got string, choices []string) string {
	best, bestD := "", 3
	for _, c := range choices {
		if d := distance(got, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	if len(choices) == 0 {
		return ""
	}
	return "known: " + strings.Join(choices, ", ")
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(rb)]
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
