package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
)

func init() {
	Register("delete", func() Fault { return &Delete{} })
}

// Deleter is an optional capability of a Processes whose runtime has a controller that
// replaces a deleted instance (a Kubernetes Deployment's pod). Without one, nothing would
// start a deleted instance again, so the delete fault needs it and is refused elsewhere.
type Deleter interface {
	// Delete deletes name's current instance and returns once its replacement is ready.
	Delete(ctx context.Context, name string) error
	// CanDelete reports whether Delete works on name.
	CanDelete(name string) bool
	// InstanceID names name's current instance (a pod's UID), "" when it has none: a
	// replacement has a new one, so a delete is seen to have landed.
	InstanceID(name string) string
}

// DefaultReadyWithin bounds how long a deleted instance's replacement may take to be ready
// when a delete fault sets no ready_within.
const DefaultReadyWithin = 60 * time.Second

// Delete deletes components' instances and lets the runtime's controller replace them: a
// Kubernetes pod deleted (SIGTERM, the grace period) and its Deployment's new pod started,
// the failover a Kubernetes user sees when a node drains or a pod is evicted. With several
// targets they go one after the other, each replacement ready before the next delete, as a
// rolling replacement does. Nothing is left to undo: the heal waits for any replacement
// not yet ready.
type Delete struct {
	Target string `yaml:"target" json:"target"`
	Pick   string `yaml:"pick,omitempty" json:"pick,omitempty"`
	// ReadyWithin bounds each replacement's time to ready (DefaultReadyWithin when 0): a
	// slower one fails the inject and the fault does not land.
	ReadyWithin time.Duration `yaml:"ready_within,omitempty" json:"ready_within,omitempty"`

	st procFaultState
	// before is each deleted name's instance before its delete; took how long its
	// replacement took to be ready, for the names whose Delete returned.
	before map[string]string
	took   map[string]time.Duration
}

var (
	_ Fault     = (*Delete)(nil)
	_ Validator = (*Delete)(nil)
	_ Targeted  = (*Delete)(nil)
	_ Measurer  = (*Delete)(nil)
)

// Validate checks the attributes.
func (f *Delete) Validate() []error {
	return append(checkProcTarget(f.Target, f.Pick), checkDuration("ready_within", f.ReadyWithin)...)
}

// Targets names the component or service.
func (f *Delete) Targets() []string { return []string{f.Target} }

func (f *Delete) readyWithin() time.Duration {
	if f.ReadyWithin > 0 {
		return f.ReadyWithin
	}
	return DefaultReadyWithin
}

// deleterOf is procs's Deleter when it can delete every one of names; the error says why
// not otherwise, before anything was deleted.
func deleterOf(procs Processes, names []string) (Deleter, error) {
	d, ok := procs.(Deleter)
	if !ok {
		return nil, errors.New("the runtime has no controller that replaces a deleted instance (only the kubernetes runtime has one); use crash or restart")
	}
	for _, n := range names {
		if !d.CanDelete(n) {
			return nil, fmt.Errorf("%s: the runtime has no controller that replaces it (only the kubernetes runtime has one); use crash or restart", n)
		}
	}
	return d, nil
}

// Inject deletes each target's instance and waits for its replacement to be ready.
func (f *Delete) Inject(ctx context.Context, env Env) error {
	procs, err := procsOf(env, "inject", "delete")
	if err != nil {
		return err
	}
	names, err := resolveProcs(procs, f.Target, f.Pick)
	if err != nil {
		return fmt.Errorf("inject delete: %w", err)
	}
	del, err := deleterOf(procs, names)
	if err != nil {
		return fmt.Errorf("inject delete: %w", err)
	}
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if len(f.st.names) > 0 {
		return errors.New("inject delete: already injected; heal it first")
	}
	f.before, f.took = map[string]string{}, map[string]time.Duration{}
	var errs []error
	for _, n := range names {
		// Recorded before the delete: one that errors may still have removed the instance,
		// and the heal must then wait for its replacement.
		f.st.names = append(f.st.names, n)
		f.before[n] = del.InstanceID(n)
		dctx, cancel := context.WithTimeout(ctx, f.readyWithin())
		began := time.Now()
		err := del.Delete(dctx, n)
		took := time.Since(began)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", n, err))
			continue
		}
		f.took[n] = took
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("inject delete: %w", err)
	}
	return nil
}

// Heal waits for the replacement of every deleted instance that is not running yet: the
// controller makes it, so there is nothing else to undo, and an instance already replaced
// is not an error.
func (f *Delete) Heal(ctx context.Context, env Env) error {
	return f.st.heal(ctx, env, "delete")
}

// Measure checks each deleted instance was replaced: a new instance (a new pod UID) runs.
// Its figure is the time from the delete until the replacement was ready, in seconds,
// the slowest of the targets', against none configured: the tolerance is ready_within.
func (f *Delete) Measure(ctx context.Context, env Env) (Effect, error) {
	eff := Effect{Kind: "delete", Unit: "s", Tolerance: f.readyWithin().Seconds()}
	names := f.st.recorded()
	f.st.mu.Lock()
	before, took := maps.Clone(f.before), maps.Clone(f.took)
	f.st.mu.Unlock()
	if len(names) == 0 {
		return eff, errors.New("measure delete: not injected")
	}
	procs, err := procsOf(env, "measure", "delete")
	if err != nil {
		return eff, err
	}
	del, _ := procs.(Deleter)
	replaced := 0
	var details []string
	for _, n := range names {
		how := "no way to tell its instance"
		hit := del != nil && poll(ctx, observeWithin, func() bool {
			now := del.InstanceID(n)
			running := procs.Running(n)
			how = fmt.Sprintf("instance %s -> %s, running=%t", short(before[n]), short(now), running)
			return now != "" && now != before[n] && running
		})
		d, ready := took[n]
		if ready {
			eff.Measured = max(eff.Measured, d.Seconds())
			how += fmt.Sprintf(", replacement ready %.2f s after the delete", d.Seconds())
		} else {
			how += ", replacement not ready when the inject returned"
		}
		if hit && ready && d <= f.readyWithin() {
			replaced++
		}
		details = append(details, n+": "+how)
	}
	eff.Landed = replaced == len(names)
	eff.Detail = strings.Join(details, "; ")
	return eff, nil
}

// short abbreviates an instance id (a UID) for a detail line; "" reads as none.
func short(id string) string {
	switch {
	case id == "":
		return "none"
	case len(id) > 8:
		return id[:8]
	}
	return id
}
