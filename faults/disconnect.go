package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

func init() {
	Register("disconnect", func() Fault { return &Disconnect{} })
}

// Networker is an optional capability of a Processes whose runtime controls its
// components' network (containers): Disconnect takes a component off the run's network
// while it keeps running, Reconnect puts it back.
type Networker interface {
	Disconnect(ctx context.Context, name string) error
	Reconnect(ctx context.Context, name string) error
	// CanDisconnect reports whether Disconnect works on name (a local process cannot
	// leave the host's network).
	CanDisconnect(name string) bool
}

// Disconnect cuts components off the network while they keep running: the nastiest
// partition, one side alive and unreachable. On a runtime that controls the network (a
// container leaves the run's network: peers cannot resolve or reach it and its published
// ports stop answering) that is what happens. Elsewhere the links are taken down instead:
// every link to the component and every link it calls through alone; a link its whole
// service shares with other replicas (api->db-1 for api-1 of two) stays, since
// cutting it would cut the replicas too. Healing reconnects.
type Disconnect struct {
	Target   string        `yaml:"target" json:"target"`
	Pick     string        `yaml:"pick,omitempty" json:"pick,omitempty"`
	Duration time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`

	st    procFaultState
	links linkState // the fallback's held-down links
	// networked are the names taken off the network by the runtime, not by links.
	networked []string
}

var (
	_ Fault     = (*Disconnect)(nil)
	_ Validator = (*Disconnect)(nil)
	_ Targeted  = (*Disconnect)(nil)
	_ Measurer  = (*Disconnect)(nil)
)

// Validate checks the attributes.
func (f *Disconnect) Validate() []error {
	return append(checkProcTarget(f.Target, f.Pick), checkDuration("duration", f.Duration)...)
}

// Targets names the component or service.
func (f *Disconnect) Targets() []string { return []string{f.Target} }

// Inject disconnects the target components.
func (f *Disconnect) Inject(ctx context.Context, env Env) error {
	procs, err := procsOf(env, "inject", "disconnect")
	if err != nil {
		return err
	}
	names, err := resolveProcs(procs, f.Target, f.Pick)
	if err != nil {
		return fmt.Errorf("inject disconnect: %w", err)
	}
	// Engine calls are bounded: heals wait on this fault's lock, and a hung engine must not
	// hold them past their own deadline.
	ctx, cancel := context.WithTimeout(ctx, networkOpTimeout)
	defer cancel()
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if len(f.st.names) > 0 {
		return errors.New("inject disconnect: already injected; heal it first")
	}
	nw, hasNet := procs.(Networker)
	var errs []error
	var viaLinks []Link
	for _, n := range names {
		f.st.names = append(f.st.names, n)
		if hasNet && nw.CanDisconnect(n) {
			f.networked = append(f.networked, n)
			if err := nw.Disconnect(ctx, n); err != nil {
				errs = append(errs, err) // it names the component already
			}
			continue
		}
		if env.Links() == nil {
			errs = append(errs, fmt.Errorf("disconnect %s: the runtime cannot take it off the network and no link reaches it", n))
			continue
		}
		touching := linksTouching(env.Links(), procs, n)
		if len(touching) == 0 {
			errs = append(errs, fmt.Errorf("disconnect %s: no link reaches it", n))
		}
		viaLinks = append(viaLinks, touching...)
	}
	if len(viaLinks) > 0 {
		if err := f.links.inject(ctx, env.Links(), "disconnect", viaLinks, nil, true, 0); err != nil {
			errs = append(errs, err)
		}
	}
	f.st.arm(f.Duration, func() { _ = f.Heal(context.Background(), env) })
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("inject disconnect: %w", err)
	}
	return nil
}

// networkOpTimeout bounds one disconnect or reconnect of a fault.
const networkOpTimeout = 30 * time.Second

// linksTouching lists every link whose callee is the component name, or whose caller is
// name or a service of which name is the only instance. A service's link shared by
// several replicas is left out: cutting it would cut the others too.
func linksTouching(links *Links, procs Processes, name string) []Link {
	var out []Link
	for _, l := range links.All() {
		alone := false
		if l.From != name {
			inst := procs.Instances(l.From)
			alone = len(inst) == 1 && inst[0] == name
		}
		if l.From == name || l.To == name || alone {
			out = append(out, l)
		}
	}
	return out
}

// Heal reconnects the components and releases the held-down links.
func (f *Disconnect) Heal(ctx context.Context, env Env) error {
	names := f.st.take()
	f.st.mu.Lock()
	networked := f.networked
	f.networked = nil
	f.st.mu.Unlock()
	if len(names) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, networkOpTimeout)
	defer cancel()
	var errs []error
	if len(networked) > 0 {
		procs, err := procsOf(env, "heal", "disconnect")
		if err != nil {
			return err
		}
		nw, _ := procs.(Networker)
		for _, n := range networked {
			if nw == nil {
				break
			}
			if err := nw.Reconnect(ctx, n); err != nil {
				errs = append(errs, fmt.Errorf("reconnect %s: %w", n, err))
			}
		}
	}
	if err := f.links.heal(ctx, env, "disconnect"); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("heal disconnect: %w", err)
	}
	return nil
}

// Measure checks each disconnected component is unreachable: a container no longer
// answers its health endpoint; a component cut off by its links has every one of them
// refusing connections.
func (f *Disconnect) Measure(ctx context.Context, env Env) (Effect, error) {
	f.st.mu.Lock()
	networked := slices.Clone(f.networked)
	f.st.mu.Unlock()
	downLinks := f.links.injected()
	return measureProcs(ctx, env, "disconnect", f.st.recorded(), func(procs Processes, n string) (bool, string, bool) {
		if slices.Contains(networked, n) {
			h, ok := procs.(HealthProber)
			if !ok {
				return false, "no health endpoint to observe", false
			}
			healthy := h.Healthy(ctx, n)
			return !healthy, fmt.Sprintf("healthy=%t", healthy), true
		}
		links := env.Links()
		mine := map[string]bool{}
		for _, l := range linksTouching(links, procs, n) {
			mine[l.Name()] = true
		}
		var refused, total int
		for _, ln := range downLinks {
			if !mine[ln] {
				continue
			}
			total++
			if r := measureOutcome(ctx, links, ln, OutcomeRefused, 0); r.landed {
				refused++
			}
		}
		return total > 0 && refused == total, fmt.Sprintf("%d/%d links refuse", refused, total), total > 0
	})
}
