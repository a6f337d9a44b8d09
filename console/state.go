package console

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/sut"
)

// State is what the page shows, pushed every interval.
type State struct {
	T         time.Time   `json:"t"`
	Instances []Instance  `json:"instances"`
	Links     []LinkState `json:"links"`
	Breakers  []Breaker   `json:"breakers"`
	Discovery []Discovery `json:"discovery,omitempty"`
	Faults    []FaultView `json:"faults"`
	Load      *LoadState  `json:"load,omitempty"`
	// Mix is the weights of the journeys the hand load runs, or starts, with.
	Mix    map[string]float64 `json:"mix,omitempty"`
	Play   *PlayState         `json:"play,omitempty"`
	Points []Point            `json:"points"`
	Events []Event            `json:"events"`
}

// Instance is one instance of the system and its state.
type Instance struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Kind    string `json:"kind"`
	// State is what the instance's runtime says of it (runtime.Inspector): running,
	// paused (a frozen container or a stopped process), disconnected (a container off the
	// run's network) or down; followed by the hand faults on it.
	State string `json:"state"`
	// Registry is the instance's membership in the system's service registry: "in", "left"
	// (listed once, its lease expired or it deregistered since), or empty for an instance
	// the registry never listed or a system without one (sut.Registrar).
	Registry string `json:"registry,omitempty"`
}

// Discovery is one caller's view of a service: how many instances its discovery cache
// holds (faultline_discovery_instances), the count the failover check reads.
type Discovery struct {
	Component string  `json:"component"`
	Service   string  `json:"service"`
	Instances float64 `json:"instances"`
}

// LinkState is one proxied link and the hand faults on it.
type LinkState struct {
	Name   string   `json:"name"`
	From   string   `json:"from"`
	To     string   `json:"to"`
	Down   bool     `json:"down,omitempty"`
	Faults []string `json:"faults,omitempty"`
}

// Breaker is one circuit breaker of one caller instance towards one dependency.
type Breaker struct {
	Component  string  `json:"component"`
	Caller     string  `json:"caller"`
	Dependency string  `json:"dependency"`
	State      string  `json:"state"` // closed, half-open, open
	Fallbacks  float64 `json:"fallbacks"`
}

// FaultView is one hand fault in place.
type FaultView struct {
	ID     int               `json:"id"`
	Kind   string            `json:"kind"`
	Target string            `json:"target"`
	Params map[string]string `json:"params"`
	Since  time.Time         `json:"since"`
}

// LoadState is the running load's rate and figures over the last two seconds.
type LoadState struct {
	Rate   int   `json:"rate"`
	Issued int   `json:"issued"`
	Failed int   `json:"failed"`
	Now    Point `json:"now"`
}

// State returns the system's state now.
func (c *Console) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := State{T: time.Now().UTC(), Events: slices.Clone(c.events), Points: slices.Clone(c.points), Mix: maps.Clone(c.mix)}
	// Faults on instances and links, from the hand faults' own targets.
	onTarget := map[string][]string{}
	onLink := map[string][]string{}
	for _, h := range c.hand {
		label := "#" + strconv.Itoa(h.ID) + " " + h.Kind
		if v := h.Params[h.Kind]; v != "" {
			label += " " + v
		}
		st.Faults = append(st.Faults, h.FaultView)
		if lf, ok := h.fault.(faults.LinkFault); ok {
			for _, l := range lf.InjectedLinks() {
				onLink[l] = append(onLink[l], label)
			}
		}
		if t, ok := h.fault.(faults.Targeted); ok && !strings.Contains(h.Target, "->") {
			for _, name := range t.Targets() {
				onTarget[name] = append(onTarget[name], h.Kind)
			}
		}
	}
	// The scenario playing draws its faults in place the same way, by its names for them.
	for _, f := range c.playInPlaceLocked() {
		label := f.Name + " " + f.Type
		if lf, ok := f.Spec.(faults.LinkFault); ok {
			for _, l := range lf.InjectedLinks() {
				onLink[l] = append(onLink[l], label)
			}
		}
		if t, ok := f.Spec.(faults.Targeted); ok && !strings.Contains(targetOfSpec(f), "->") {
			for _, name := range t.Targets() {
				onTarget[name] = append(onTarget[name], f.Type)
			}
		}
	}
	for _, comp := range c.sys.Topology() {
		in := Instance{Name: comp.Name, Service: comp.Service, Kind: comp.Kind, State: c.states[comp.Name]}
		if in.State == "" { // not read yet
			in.State = runningState(c.sys.Running(comp.Name))
		}
		switch {
		case c.registered[comp.Name]:
			in.Registry = "in"
		case c.members[comp.Name]:
			in.Registry = "left"
		}
		if ks := append(onTarget[comp.Name], onTarget[comp.Service]...); len(ks) > 0 {
			in.State += " (" + strings.Join(ks, ", ") + ")"
		}
		st.Instances = append(st.Instances, in)
	}
	links := c.up.Links
	for _, l := range links.All() {
		st.Links = append(st.Links, LinkState{Name: l.Name(), From: l.From, To: l.To, Down: !links.Enabled(l.Name()), Faults: onLink[l.Name()]})
	}
	sort.Slice(st.Links, func(i, j int) bool { return st.Links[i].Name < st.Links[j].Name })
	// Breakers from the metrics the checks read; fallbacks served beside them.
	fallbacks := map[string]float64{}
	for _, s := range c.metrics {
		if s.Name == metricPolicy && s.Labels["event"] == "fallback" {
			fallbacks[s.Component+"|"+s.Labels["caller"]+"|"+s.Labels["dependency"]] += s.Value
		}
	}
	for _, s := range c.metrics {
		if s.Name != metricBreaker {
			continue
		}
		b := Breaker{Component: s.Component, Caller: s.Labels["caller"], Dependency: s.Labels["dependency"], State: checks.BreakerStateName(s.Value)}
		b.Fallbacks = fallbacks[s.Component+"|"+b.Caller+"|"+b.Dependency]
		st.Breakers = append(st.Breakers, b)
	}
	sort.Slice(st.Breakers, func(i, j int) bool {
		a, b := st.Breakers[i], st.Breakers[j]
		return a.Component+" "+a.Dependency < b.Component+" "+b.Dependency
	})
	for _, s := range c.metrics {
		if s.Name == metricDiscovery {
			st.Discovery = append(st.Discovery, Discovery{Component: s.Component, Service: s.Labels["service"], Instances: s.Value})
		}
	}
	sort.Slice(st.Discovery, func(i, j int) bool {
		a, b := st.Discovery[i], st.Discovery[j]
		return a.Service+" "+a.Component < b.Service+" "+b.Component
	})
	st.Play = c.playStateLocked(st.T)
	if c.load != nil {
		st.Load = &LoadState{Rate: c.load.rate, Issued: c.load.issued, Failed: c.load.failed, Now: c.loadFigures(time.Now())}
	}
	return st
}

// runningState is the state of an instance whose runtime tells only whether it runs.
func runningState(running bool) string {
	if running {
		return "running"
	}
	return "down"
}

// instanceState asks the runtime of an instance what state it is in (runtime.Inspector,
// through sut.Inspectable): down, paused (a frozen container or a stopped process),
// disconnected (off the run's network) or running. A system or runtime that cannot tell
// gives running or down.
func instanceState(ctx context.Context, sys sut.System, name string) string {
	if is, ok := sys.(sut.Inspectable); ok {
		if p, ok := is.Process(name); ok {
			if in, ok := runtime.As[runtime.Inspector](p); ok {
				// An engine that cannot answer leaves the runtime's own word on whether it runs.
				if st, err := in.State(ctx); err == nil {
					switch {
					case !st.Running:
						return "down"
					case st.Paused:
						return "paused"
					case !st.Attached:
						return "disconnected"
					}
					return "running"
				}
			}
		}
	}
	return runningState(sys.Running(name))
}
