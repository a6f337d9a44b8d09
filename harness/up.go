package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/sut"
	"github.com/faultline-dev/faultline/undo"
)

// bringUp is the pipeline's start step, shared by Run and StartSystem: start the system
// with its links through the proxies, wait for its routes through them, and record the
// proxies for crash recovery.
func bringUp(ctx context.Context, sys sut.System, env sut.Env, journal *undo.Journal) error {
	if err := sys.Start(ctx, env); err != nil {
		return err
	}
	if p, ok := sys.(sut.RoutePublisher); ok {
		wctx, cancel := context.WithTimeout(ctx, env.ReadyTimeout)
		err := p.PublishRoutes(wctx)
		cancel()
		if err != nil {
			return fmt.Errorf("publish routes: %w", err)
		}
	}
	return journal.RecordLinks(env.Links)
}

// Up is a system under test started (on the runtime WithRuntime names, local by default) for a caller that drives it
// itself (a soak): its run directory claimed, its undo record open, a proxy on every
// link and its routes published, as Run does before the load. Close undoes it all.
type Up struct {
	// System is the started system; Links holds its proxies; Env lends both to faults.
	System sut.System
	Links  *faults.Links
	Env    faults.Env
	// Dir is the run directory; Log is the logger WithLogger gave.
	Dir string
	Log *slog.Logger

	journal *undo.Journal
	undos   []func(context.Context)
	plan    sut.Plan
	// leaseLost is LeaseLost's channel: the container runtime's, else the system's.
	leaseLost <-chan struct{}
}

// LeaseLost is closed when the lease the system's runtime holds on its cluster is lost (a
// Kubernetes runtime's Lease, not renewed for a whole TTL: the namespace's reaper may be
// deleting the system), else when the system itself loses one; nil, never closed, when
// neither holds a lease. Whatever keeps u up should then close it (see WatchLease).
func (u *Up) LeaseLost() <-chan struct{} { return u.leaseLost }

// RecordFaults records, in the undo record, the faults the caller holds in place now, so
// that a caller killed with SIGKILL mid-fault is healed by the next faultline command the
// way a run's scheduled faults are. Each call replaces the previous list.
func (u *Up) RecordFaults(fs []undo.Fault) error {
	if u.journal == nil {
		return errors.New("record faults: the system is not started")
	}
	return u.journal.RecordFaults(fs)
}

// StartSystem starts sys the way a run does, in the directory WithDir names (default
// DefaultRunsDir/<UTC timestamp>-<name>). WithLogger, WithReadyTimeout, WithLinkOptions,
// WithRuntime and WithDocker apply: on Docker the system's containers, its network and
// the Toxiproxy container holding the links' proxies are made as a run makes them. On an
// error, what was made is already undone.
func StartSystem(ctx context.Context, sys sut.System, name string, opts ...Option) (_ *Up, err error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	began := time.Now()
	u := &Up{System: sys, Log: o.log}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			u.Close(cctx)
		}
	}()
	dir := o.dir
	if dir == "" {
		dir = filepath.Join(DefaultRunsDir, began.UTC().Format("20060102T150405Z")+"-"+name)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("resolve %s dir: %w", name, err)
	}
	// Claimed like a run's: a second one on this directory would start a second system there.
	release, err := ClaimDir(dir)
	if err != nil {
		return nil, fmt.Errorf("create %s dir: %w", name, err)
	}
	u.Dir = dir
	u.undos = append(u.undos, func(context.Context) { release() })
	// The undo record exists before anything is created, so that a process killed with
	// SIGKILL is healed by the next faultline command, and goes once everything is gone.
	rtName := cmp.Or(o.runtime, "local")
	if err := sys.Runnable(rtName); err != nil {
		return nil, err
	}
	journal, err := undo.OpenJournal(undo.DefaultDir(), undo.NewRunID(began, name), dir, rtName)
	if err != nil {
		return nil, err
	}
	u.journal = journal
	u.undos = append(u.undos, func(ctx context.Context) {
		if jerr := journal.Close(ctx); jerr != nil {
			o.log.Warn("close undo record", "err", jerr)
		}
	})
	container := containerized(rtName)
	plan, err := sys.Plan(dir, container)
	if err != nil {
		return nil, err
	}
	u.plan = plan
	env := sut.Env{Dir: dir, Container: container, ReadyTimeout: o.readyTimeout, Log: o.log}
	linkOpts := o.linkOpts
	var rt runtime.Runtime
	if container {
		// The run's own Docker side (network, Toxiproxy container, reaper), as prepare makes it.
		r := &runner{o: o, sys: sys, journal: journal, dir: dir}
		proxies := max(plan.Proxies, 1)
		d, closeDocker, err := r.startContainers(ctx, rtName, proxies)
		// Registered before the error is checked: a half-made runtime is removed too.
		u.undos = append(u.undos, closeDocker)
		if err != nil {
			return nil, err
		}
		remote, err := d.remote(proxies)
		if err != nil {
			return nil, err
		}
		linkOpts = append(slices.Clone(linkOpts), faults.WithRemote(remote))
		rt, env.Dial = d.rt, d.dial
		if h, ok := d.rt.(leaseHolder); ok {
			u.leaseLost = h.LeaseLost()
		}
	} else {
		lrt := local.New(local.WithLogger(o.log))
		u.undos = append(u.undos, func(ctx context.Context) { _ = lrt.Close(ctx) })
		rt = lrt
	}
	links, err := faults.NewLinks(linkOpts...)
	if err != nil {
		return nil, fmt.Errorf("start fault proxies: %w", err)
	}
	u.Links = links
	u.undos = append(u.undos, func(context.Context) { links.Close() })
	u.undos = append(u.undos, func(ctx context.Context) {
		if serr := sys.Stop(ctx); serr != nil {
			o.log.Warn("stop system", "err", serr)
		}
	})
	env.Runtime, env.Links = undo.WrapRuntime(rt, journal), links
	if err := bringUp(ctx, sys, env, journal); err != nil {
		return nil, err
	}
	u.Env = faults.NewEnv(links, controls(sys))
	if h, ok := sys.(leaseHolder); ok && u.leaseLost == nil {
		u.leaseLost = h.LeaseLost()
	}
	u.undos = append(u.undos, func(ctx context.Context) { _ = links.HealAll(ctx) })
	return u, nil
}

// Close heals every link, stops the system and removes what StartSystem made, in the
// reverse order of its making. ctx bounds it; it should outlive an interrupted run.
func (u *Up) Close(ctx context.Context) {
	for _, f := range slices.Backward(u.undos) {
		f(ctx)
	}
	u.undos = nil
}

// WithStarted runs the scenario on u's system, already started and left running when the
// run ends (an explorer's trials): the run claims its own directory, undo record and
// history as any run does, injects through u's proxies and heals them on every way out,
// but neither starts nor stops the system. The scenario must be one u's system accepts;
// WithSystem, WithSystemFor and WithRuntime do not apply. Because the system's state
// outlives the run, a state that can be judged from a baseline (sut.Rebaser) is judged
// from the one read when the run's load begins, so earlier runs' work is not this one's.
func WithStarted(u *Up) Option { return func(o *options) { o.started = u } }
