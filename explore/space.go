package explore

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/result"
)

// Target kinds: a link between two services, or one instance.
const (
	TargetLink     = "link"
	TargetInstance = "instance"
)

// DefaultKinds are the fault kinds an explore tries when none are named.
var DefaultKinds = []string{"latency", "timeout", "down", "reset_peer", "crash", "pause", "partition"}

// kindRule says what a fault kind acts on and the attributes its trial fault gets beside
// its target; explore knows the kinds it can aim, and skips (with the reason) any other
// registered kind.
type kindRule struct {
	target string
	attrs  func(t Target) map[string]any
}

// DefaultLatency is the delay a latency trial adds: beyond the reference design's 1 s
// call timeouts, so a caller must give up, as in the catalog's cascading-failure pair.
const DefaultLatency = 1500 * time.Millisecond

var kindRules = map[string]kindRule{
	"latency": {TargetLink, func(t Target) map[string]any {
		return map[string]any{"target": t.Name, "latency": DefaultLatency.String()}
	}},
	"timeout":    {TargetLink, linkOnly},
	"down":       {TargetLink, linkOnly},
	"reset_peer": {TargetLink, linkOnly},
	"slow_close": {TargetLink, func(t Target) map[string]any { return map[string]any{"target": t.Name, "delay": "1s"} }},
	"partition": {TargetLink, func(t Target) map[string]any {
		return map[string]any{"groups": [][]string{{t.From}, {t.To}}}
	}},
	"crash":   {TargetInstance, instanceOnly},
	"pause":   {TargetInstance, instanceOnly},
	"restart": {TargetInstance, instanceOnly},
}

func linkOnly(t Target) map[string]any     { return map[string]any{"target": t.Name} }
func instanceOnly(t Target) map[string]any { return map[string]any{"target": t.Name} }

// Target is one thing a fault can hit: a link between two services (all the proxies from
// From's instances to To's instances) or one instance.
type Target struct {
	Kind string `json:"kind"`
	// Name is how a scenario names it: "gateway->product" or "order-2".
	Name string `json:"name"`
	// From and To are a link's caller and callee services.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Traffic counts the connections that carried bytes through a link's proxies while
	// the discovery load ran.
	Traffic int `json:"traffic,omitempty"`
}

// Candidate is one fault a trial injects: a kind on a target.
type Candidate struct {
	Kind   string `json:"kind"`
	Target Target `json:"target"`
}

// Key names the candidate in the matrix and the progress lines: "latency gateway->product".
func (c Candidate) Key() string { return c.Kind + " " + c.Target.Name }

// Attrs are the fault's attributes beside name, type, at and for.
func (c Candidate) Attrs() map[string]any { return kindRules[c.Kind].attrs(c.Target) }

// Skip is a kind or target the search left out, and why.
type Skip struct {
	What   string `json:"what"`
	Reason string `json:"reason"`
}

// Observed is what the discovery load showed of the running system: its links with the
// traffic each carried, and its instances.
type Observed struct {
	Links      []faults.Link
	Traffic    map[string]int // by link name: connections that carried bytes
	Components []result.Component
}

// Space is the fault space to search: the targets the load exercised, the kinds that
// apply, and what was left out.
type Space struct {
	Targets []Target    `json:"targets"`
	Kinds   []string    `json:"kinds"`
	Singles []Candidate `json:"-"`
	// Pruned are targets no traffic reached; Skipped are kinds (or kind × target kinds)
	// that do not apply.
	Pruned  []Skip `json:"pruned,omitempty"`
	Skipped []Skip `json:"skipped,omitempty"`
}

// ValidateKinds refuses kinds that are not registered fault kinds, naming the known ones.
func ValidateKinds(kinds []string) error {
	known := faults.Kinds()
	var bad []string
	for _, k := range kinds {
		if !slices.Contains(known, k) {
			bad = append(bad, fmt.Sprintf("%q", k))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("validate kinds: unknown fault kind(s) %s (known: %s)", strings.Join(bad, ", "), strings.Join(known, ", "))
	}
	return nil
}

// Enumerate builds the search space from what the discovery load showed: one link target
// per pair of services with a proxied link between them, kept only when its proxies
// counted traffic (the others are pruned, as Filibuster prunes calls never made); one
// instance target per instance at either end of a link that carried traffic; and the
// candidates, every applicable kind on every target, in a stable order (targets by
// name, kinds in the order given).
func Enumerate(obs Observed, kinds []string) Space {
	sp := Space{}
	type group struct {
		from, to string
		traffic  int
	}
	groups := map[string]*group{}
	serviceOf := map[string]string{}
	for _, c := range obs.Components {
		serviceOf[c.Name] = cmp.Or(c.Service, c.Name)
	}
	exercised := map[string]bool{} // instance or service names at an end of a used link
	for _, l := range obs.Links {
		from := cmp.Or(l.FromService, l.From)
		to := cmp.Or(l.ToService, l.To)
		name := from + "->" + to
		g := groups[name]
		if g == nil {
			g = &group{from: from, to: to}
			groups[name] = g
		}
		n := obs.Traffic[l.Name()]
		g.traffic += n
		if n > 0 {
			exercised[l.From], exercised[l.To] = true, true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		g := groups[name]
		if g.traffic == 0 {
			sp.Pruned = append(sp.Pruned, Skip{What: "link " + name, Reason: "no traffic crossed its proxies under the load"})
			continue
		}
		sp.Targets = append(sp.Targets, Target{Kind: TargetLink, Name: name, From: g.from, To: g.to, Traffic: g.traffic})
	}
	comps := slices.Clone(obs.Components)
	slices.SortFunc(comps, func(a, b result.Component) int { return cmp.Compare(a.Name, b.Name) })
	for _, c := range comps {
		if !exercised[c.Name] && !exercised[cmp.Or(c.Service, c.Name)] {
			sp.Pruned = append(sp.Pruned, Skip{What: "instance " + c.Name, Reason: "no link to or from it carried traffic under the load"})
			continue
		}
		sp.Targets = append(sp.Targets, Target{Kind: TargetInstance, Name: c.Name})
	}
	for _, k := range kinds {
		if _, ok := kindRules[k]; !ok {
			sp.Skipped = append(sp.Skipped, Skip{What: "kind " + k, Reason: "explore has no rule for aiming it at a link or an instance"})
			continue
		}
		sp.Kinds = append(sp.Kinds, k)
	}
	for _, t := range sp.Targets {
		for _, k := range sp.Kinds {
			if kindRules[k].target == t.Kind {
				sp.Singles = append(sp.Singles, Candidate{Kind: k, Target: t})
			}
		}
	}
	return sp
}

// Pairs combines the singles that passed two by two (never two faults on one target:
// the interactions searched for are between parts), in an order shuffled by seed, so
// that a budget that stops the search early has sampled the pairs evenly and a rerun
// with the same seed tries them in the same order.
func Pairs(passed []Candidate, seed int64) [][2]Candidate {
	var out [][2]Candidate
	for i := range passed {
		for j := i + 1; j < len(passed); j++ {
			if passed[i].Target.Name == passed[j].Target.Name {
				continue
			}
			out = append(out, [2]Candidate{passed[i], passed[j]})
		}
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
