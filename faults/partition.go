package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

func init() {
	Register("partition", func() Fault { return &Partition{} })
}

// Partition splits components into groups that cannot reach each other. Packets vanish
// in a real partition, so by default every link that crosses the cut becomes a black
// hole in both streams (callers time out); mode refuse takes those links down instead.
//
// A group member is a component ("api-1") or a whole service ("queue"). With direction
// one-way only links whose caller sits in an earlier group than its callee are cut: the
// first group cannot reach the others, while they can still reach it.
type Partition struct {
	Groups    [][]string    `yaml:"groups" json:"groups"`
	Direction string        `yaml:"direction,omitempty" json:"direction,omitempty"`
	Mode      string        `yaml:"mode,omitempty" json:"mode,omitempty"`
	Duration  time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	st        linkState
}

// Validate checks the attributes.
func (f *Partition) Validate() []error {
	var errs []error
	if len(f.Groups) < 2 {
		errs = append(errs, fmt.Errorf("groups: want at least two groups, got %d", len(f.Groups)))
	}
	seen := map[string]int{}
	for i, g := range f.Groups {
		if len(g) == 0 {
			errs = append(errs, fmt.Errorf("groups[%d]: must not be empty", i))
		}
		for _, m := range g {
			if !validName(m) {
				errs = append(errs, fmt.Errorf("groups[%d]: %q is not a component or service name", i, m))
				continue
			}
			if j, dup := seen[m]; dup {
				errs = append(errs, fmt.Errorf("groups[%d]: %q is already in groups[%d]", i, m, j))
				continue
			}
			seen[m] = i
		}
	}
	switch f.Direction {
	case "", "both", "one-way":
	default:
		errs = append(errs, fmt.Errorf("direction: want both or one-way, got %q", f.Direction))
	}
	switch f.Mode {
	case "", "blackhole", "refuse":
	default:
		errs = append(errs, fmt.Errorf("mode: want blackhole or refuse, got %q", f.Mode))
	}
	return append(errs, checkDuration("duration", f.Duration)...)
}

// Targets lists every group member.
func (f *Partition) Targets() []string {
	var out []string
	for _, g := range f.Groups {
		out = append(out, g...)
	}
	return out
}

// groupOf finds the group an end of a link belongs to: by its own name, by its service's
// name, or — for a service-wide caller — because every instance of it is in one group.
// A service whose instances are split across groups (or only partly listed) cannot be
// cut on a shared link without cutting the wrong instances, so that is an error.
func (f *Partition) groupOf(procs Processes, name, service string) (int, error) {
	for i, g := range f.Groups {
		for _, m := range g {
			if m == name || (service != "" && m == service) {
				return i, nil
			}
			if procs != nil && slices.Contains(procs.Instances(m), name) {
				return i, nil
			}
		}
	}
	if procs == nil {
		return -1, nil
	}
	inst := procs.Instances(name)
	if len(inst) == 0 {
		return -1, nil
	}
	found := -1
	listed := 0
	for _, in := range inst {
		for i, g := range f.Groups {
			if slices.Contains(g, in) {
				listed++
				if found >= 0 && found != i {
					return -1, fmt.Errorf("instances of %s are in different groups, but its link is shared by all of them", name)
				}
				found = i
			}
		}
	}
	if listed > 0 && listed < len(inst) {
		return -1, fmt.Errorf("only some instances of %s are grouped, but its link is shared by all of them", name)
	}
	return found, nil
}

// Cut lists the links the partition would cut, sorted by name.
func (f *Partition) Cut(env Env) ([]Link, error) {
	links, err := linksOf(env, "cut", "partition")
	if err != nil {
		return nil, err
	}
	var procs Processes
	if env != nil {
		procs = env.Processes()
	}
	var cut []Link
	for _, l := range links.All() {
		gf, err := f.groupOf(procs, l.From, l.FromService)
		if err != nil {
			return nil, fmt.Errorf("cut link %s: %w", l.Name(), err)
		}
		gt, err := f.groupOf(procs, l.To, l.ToService)
		if err != nil {
			return nil, fmt.Errorf("cut link %s: %w", l.Name(), err)
		}
		if gf < 0 || gt < 0 || gf == gt {
			continue
		}
		if f.Direction == "one-way" && gf > gt {
			continue
		}
		cut = append(cut, l)
	}
	return cut, nil
}

// Inject cuts every link that crosses the groups.
func (f *Partition) Inject(ctx context.Context, env Env) error {
	cut, err := f.Cut(env)
	if err != nil {
		return fmt.Errorf("inject partition: %w", err)
	}
	if len(cut) == 0 {
		return fmt.Errorf("inject partition: no link crosses the groups %v", f.Groups)
	}
	if f.Mode == "refuse" {
		return f.st.inject(ctx, env.Links(), "partition", cut, nil, true, f.Duration)
	}
	return f.st.inject(ctx, env.Links(), "partition", cut, toxicSpecs("timeout", "both", 0, map[string]any{"timeout": 0}), false, f.Duration)
}

// Heal reconnects what this partition cut.
func (f *Partition) Heal(ctx context.Context, env Env) error { return f.st.heal(ctx, env, "partition") }

// InjectedLinks names the links the partition black-holes. In mode refuse the links are
// down and refuse connections before their proxies could count them: none to watch.
func (f *Partition) InjectedLinks() []string {
	if f.Mode == "refuse" {
		return nil
	}
	return f.st.injected()
}

// Measure probes every cut link: each must be silent (or refused in mode refuse) while
// its upstream still answers directly. Configured and Measured count links.
func (f *Partition) Measure(ctx context.Context, env Env) (Effect, error) {
	want := OutcomeSilent
	if f.Mode == "refuse" {
		want = OutcomeRefused
	}
	names, results, err := measureEach(ctx, env, "partition", &f.st, func(ctx context.Context, l *Links, name string) linkResult {
		return measureOutcome(ctx, l, name, want, 0)
	})
	eff := Effect{Kind: "partition", Configured: float64(len(names)), Unit: "links"}
	if err != nil {
		return eff, err
	}
	details := make([]string, 0, len(results))
	for i, r := range results {
		details = append(details, names[i]+": "+r.detail)
		if r.landed {
			eff.Measured++
		}
	}
	eff.Landed = eff.Measured == eff.Configured
	eff.Detail = strings.Join(details, "; ")
	return eff, nil
}

var (
	_ Fault     = (*Partition)(nil)
	_ Validator = (*Partition)(nil)
	_ Targeted  = (*Partition)(nil)
	_ Measurer  = (*Partition)(nil)
	_ LinkFault = (*Partition)(nil)
)
