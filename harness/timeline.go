package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/undo"
)

// startTimeline starts one goroutine per fault: inject at load start + at, measure,
// heal at load start + at + for. A cancelled ctx skips faults not yet injected and heals
// injected ones at once. Wait on the returned group before healing everything.
func (r *runner) startTimeline(ctx context.Context, env faults.Env) *sync.WaitGroup {
	var wg sync.WaitGroup
	r.mu.Lock()
	r.faults = make([]result.Fault, len(r.sc.Faults))
	for i, fs := range r.sc.Faults {
		r.faults[i] = result.Fault{Name: fs.Name, Type: fs.Type, At: result.Duration(fs.At), For: result.Duration(fs.For)}
		if t, ok := fs.Spec.(faults.Targeted); ok {
			r.faults[i].Targets = t.Targets()
		}
	}
	r.mu.Unlock()
	var firstInject sync.Once
	for i, fs := range r.sc.Faults {
		f, ok := fs.Spec.(faults.Fault)
		if !ok {
			r.mu.Lock()
			r.faults[i].Effect = &result.Effect{Detail: fmt.Sprintf("fault type %q has no injector", fs.Type)}
			r.mu.Unlock()
			continue
		}
		wg.Go(func() { r.runFault(ctx, env, i, fs, f, &firstInject) })
	}
	return &wg
}

// sleepUntil waits until t or ctx's end and reports whether t was reached.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *runner) runFault(ctx context.Context, env faults.Env, i int, fs scenarios.FaultSpec, f faults.Fault, firstInject *sync.Once) {
	if !sleepUntil(ctx, r.loadStart.Add(fs.At.Std())) {
		return
	}
	firstInject.Do(func() { r.phaseEdge(checks.PhaseBefore, history.PhaseEnd) })
	injectedAt := r.since()
	r.phaseEdge(checks.During(fs.Name), history.PhaseStart)
	hf := history.Fault{Action: history.FaultInject, Name: fs.Name, Type: fs.Type, Target: targetOf(f), Params: paramsOf(f)}
	err := f.Inject(ctx, env)
	traffic := watchTraffic(env, f)
	r.mu.Lock()
	r.faults[i].Injected = result.Duration(injectedAt)
	if err == nil {
		r.active[fs.Name] = true
	}
	r.mu.Unlock()
	r.report()
	var eff *result.Effect
	wm, windowed := f.(faults.WindowMeasurer)
	switch m, ok := f.(faults.Measurer); {
	case err != nil:
		hf.Error = err.Error()
		eff = &result.Effect{Detail: "inject: " + err.Error()}
	case windowed:
		// Measured once, when the window ends: a first look would undercount it.
	case !ok:
		// Without a measurement the run cannot show the fault did anything: never "passed".
		eff = &result.Effect{Detail: fmt.Sprintf("fault type %s cannot measure its effect", fs.Type)}
	default:
		// Measuring must not delay the heal: it gets the fault's window and no more.
		mctx, cancel := context.WithDeadline(ctx, r.loadStart.Add(fs.End().Std()))
		e, merr := m.Measure(mctx, env)
		cancel()
		switch {
		case merr != nil && ctx.Err() != nil:
			// Interrupted while measuring: nothing to conclude.
		case merr != nil && mctx.Err() != nil:
			eff = &result.Effect{Detail: fmt.Sprintf("measure: the fault's window (%s) ended before its effect could be measured: %v", fs.For, merr)}
		case merr != nil:
			eff = &result.Effect{Detail: "measure: " + merr.Error()}
		default:
			eff = effectOf(e)
			hf.Configured, hf.Measured = historyEffects(e)
		}
	}
	r.mu.Lock()
	r.faults[i].Effect = eff
	r.mu.Unlock()
	// Stamped with the moment of injection, although written once the effect is known.
	ev := history.FaultEvent(hf)
	ev.T = max(injectedAt, 1)
	_ = r.hist.Write(ev)

	sleepUntil(ctx, r.loadStart.Add(fs.End().Std()))
	heal := history.Fault{Action: history.FaultHeal, Name: fs.Name, Type: fs.Type, Target: hf.Target}
	if windowed && err == nil {
		eff = measureWindow(ctx, env, wm, &heal)
		r.mu.Lock()
		r.faults[i].Effect = eff
		r.mu.Unlock()
	}
	crossed := traffic.stop()
	if ctx.Err() != nil {
		crossed = nil // an interrupted window concludes nothing
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	herr := f.Heal(hctx, env)
	cancel()
	healedAt := r.since()
	if herr != nil {
		heal.Error = herr.Error()
	}
	_ = r.hist.Write(history.FaultEvent(heal))
	r.phaseEdge(checks.During(fs.Name), history.PhaseEnd)
	r.mu.Lock()
	r.faults[i].Healed = result.Duration(healedAt)
	r.faults[i].Traffic = crossed
	if herr != nil {
		r.faults[i].HealError = herr.Error()
	}
	delete(r.active, fs.Name)
	r.lastHeal = max(r.lastHeal, healedAt)
	allHealed := true
	for _, rf := range r.faults {
		allHealed = allHealed && rf.Healed > 0
	}
	r.mu.Unlock()
	if allHealed && ctx.Err() == nil {
		r.phaseEdge(checks.PhaseAfter, history.PhaseStart)
		r.setPhase("after")
	} else {
		r.report()
	}
}

// FaultTarget is the fault's own target as written in the scenario, when it has one;
// FaultParams flattens its attributes (its exported fields, by their json names), as the
// history records them.
func FaultTarget(f faults.Fault) string { return targetOf(f) }

// FaultParams: see FaultTarget.
func FaultParams(f faults.Fault) map[string]string { return paramsOf(f) }

// targetOf is the fault's own target as written in the scenario, when it has one.
func targetOf(f faults.Fault) string {
	v := reflect.ValueOf(f)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		if t := v.FieldByName("Target"); t.IsValid() && t.Kind() == reflect.String {
			return t.String()
		}
	}
	if t, ok := f.(faults.Targeted); ok {
		return strings.Join(t.Targets(), ",")
	}
	return ""
}

// paramsOf flattens a fault's attributes (its exported fields, by their json names) for
// the history, so reports can show them: durations as "300ms", zero values left out.
func paramsOf(f faults.Fault) map[string]string {
	v := reflect.ValueOf(f)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	out := map[string]string{}
	for i := range v.NumField() {
		field, fv := v.Type().Field(i), v.Field(i)
		name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
		if !field.IsExported() || name == "-" || name == "target" || fv.IsZero() {
			continue
		}
		if name == "" {
			name = strings.ToLower(field.Name)
		}
		switch x := fv.Interface().(type) {
		case time.Duration:
			out[name] = x.String()
		case string, bool, int, int64, float64:
			out[name] = fmt.Sprint(x)
		default:
			if b, err := json.Marshal(x); err == nil {
				out[name] = string(b)
			}
		}
	}
	return out
}

// healAll heals every fault of the scenario (healing is idempotent) and then every link,
// hand-injected toxics included. It is the last line of defence on every exit path.
func (r *runner) healAll(ctx context.Context, env faults.Env) {
	for _, fs := range r.sc.Faults {
		if f, ok := fs.Spec.(faults.Fault); ok {
			if err := f.Heal(ctx, env); err != nil {
				r.o.log.Warn("heal fault", "fault", fs.Name, "err", err)
			}
		}
	}
	if r.links != nil {
		if err := r.links.HealAll(ctx); err != nil {
			r.o.log.Warn("heal links", "err", err)
		}
	}
}

// closePhases closes the phases in the history and records the run's phases, as the
// checks package computes them from the actual inject and heal times, and where on the
// run's clock the load started.
func (r *runner) closePhases(loadStart, loadEnd time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	injected, allHealed := false, len(r.faults) > 0
	for _, f := range r.faults {
		injected = injected || f.Injected > 0
		allHealed = allHealed && f.Healed > 0
	}
	if !injected {
		r.phaseEdge(checks.PhaseBefore, history.PhaseEnd)
	}
	if allHealed {
		r.phaseEdge(checks.PhaseAfter, history.PhaseEnd)
	}
	r.res.Phases = checks.Phases(r.sc, slices.Clone(r.faults), loadStart, loadEnd)
	// Reports count every time from load start, as the scenario does; the result keeps the
	// run's own clock and says where on it the load began.
	r.res.LoadStart = result.Duration(loadStart)
}

// runLive runs each live check (http_probe, command) at its planned moment against env, in
// one goroutine, and returns a function that waits for them and gives their results. A check
// whose moment never comes because the run was interrupted is skipped, which never passes.
func (r *runner) runLive(ctx context.Context, lcs []checks.LiveCheck, env checks.LiveEnv) func() []result.Check {
	out := make([]result.Check, len(lcs))
	var wg sync.WaitGroup
	wg.Go(func() {
		for i, lc := range lcs {
			if !sleepUntil(ctx, r.began.Add(lc.At)) {
				out[i] = result.Check{Name: lc.Name, Phase: lc.Phase, Kind: lc.Check.Type, Skipped: true, Message: "not run: the run was interrupted"}
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			out[i] = lc.Run(cctx, env)
			cancel()
		}
	})
	return func() []result.Check { wg.Wait(); return out }
}

// undoFaults is the fault timeline as absolute times, for the undo record.
func (r *runner) undoFaults() []undo.Fault {
	var out []undo.Fault
	for _, fs := range r.sc.Faults {
		uf := undo.Fault{
			Name: fs.Name, Type: fs.Type,
			From:   r.loadStart.Add(fs.At.Std()).UTC(),
			HealBy: r.loadStart.Add(fs.End().Std()).UTC(),
		}
		if t, ok := fs.Spec.(faults.Targeted); ok {
			uf.Targets = t.Targets()
		}
		out = append(out, uf)
	}
	return out
}
