package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func init() {
	Register("crash", func() Fault { return &Crash{} })
	Register("pause", func() Fault { return &Pause{} })
	Register("restart", func() Fault { return &Restart{} })
	Register("crash_loop", func() Fault { return &CrashLoop{} })
}

// observeWithin bounds how long Measure waits for a process to show a fault's effect:
// SIGKILL and SIGSTOP are asynchronous, and a loaded machine may take a moment.
const observeWithin = 3 * time.Second

func procsOf(env Env, verb, kind string) (Processes, error) {
	if env == nil || env.Processes() == nil {
		return nil, fmt.Errorf("%s %s: this run has no processes to fault", verb, kind)
	}
	return env.Processes(), nil
}

func checkProcTarget(target, pick string) []error {
	var errs []error
	if !validName(target) {
		errs = append(errs, fmt.Errorf("target: want a component (api-2) or a service (api), got %q", target))
	}
	switch pick {
	case "", "one", "all":
	default:
		errs = append(errs, fmt.Errorf("pick: want one or all, got %q", pick))
	}
	return errs
}

// resolveProcs turns a target into component names. A service means all its instances,
// or with pick one the first running one (deterministic, so seeded runs repeat).
func resolveProcs(procs Processes, target, pick string) ([]string, error) {
	if !validName(target) {
		return nil, fmt.Errorf("resolve target: %q is not a component or service", target)
	}
	inst := procs.Instances(target)
	if len(inst) == 0 {
		return []string{target}, nil
	}
	if pick != "one" {
		return append([]string(nil), inst...), nil
	}
	for _, n := range inst {
		if procs.Running(n) {
			return []string{n}, nil
		}
	}
	return []string{inst[0]}, nil
}

// poll checks cond until it holds or within passes; it reports the last answer.
func poll(ctx context.Context, within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// procState reads a local process's state letter from /proc (R, S, D, T, t, Z, ...).
func procState(pid int) (byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read process state: %w", err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("read process state: malformed /proc/%d/stat", pid)
	}
	return b[i+2], nil
}

// stopped reports whether name is observably stopped, and how it was observed. ok is
// false when the Processes offers no way to tell.
func stopped(ctx context.Context, procs Processes, name string) (isStopped bool, how string, ok bool) {
	if !procs.Running(name) {
		// Dead is not paused, and an unanswered health check would say it was.
		return false, "not running", true
	}
	if p, has := procs.(PIDs); has {
		if pid, known := p.PID(name); known {
			st, err := procState(pid)
			if err == nil {
				return st == 'T' || st == 't', fmt.Sprintf("pid %d state %c", pid, st), true
			}
		}
	}
	if h, has := procs.(HealthProber); has {
		healthy := h.Healthy(ctx, name)
		return !healthy, fmt.Sprintf("healthy=%t", healthy), true
	}
	return false, "no PID or health endpoint to observe", false
}

// procState is what a process fault remembers between Inject and Heal.
type procFaultState struct {
	mu    sync.Mutex
	names []string
	timer *time.Timer
}

func (s *procFaultState) arm(ttl time.Duration, heal func()) {
	if ttl > 0 {
		s.timer = time.AfterFunc(ttl, heal)
	}
}

// take hands the recorded names to a healer exactly once.
func (s *procFaultState) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	names := s.names
	s.names = nil
	return names
}

func (s *procFaultState) recorded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.names...)
}

func ensureRunning(ctx context.Context, procs Processes, names []string) error {
	var errs []error
	for _, n := range names {
		if !procs.Running(n) {
			if err := procs.Restart(ctx, n); err != nil {
				errs = append(errs, fmt.Errorf("restart %s: %w", n, err))
			}
		}
	}
	return errors.Join(errs...)
}

// heal hands the recorded names to ensureRunning exactly once: what a crash, restart or
// delete leaves to undo is an instance that is not running again yet.
func (s *procFaultState) heal(ctx context.Context, env Env, kind string) error {
	names := s.take()
	if len(names) == 0 {
		return nil
	}
	procs, err := procsOf(env, "heal", kind)
	if err != nil {
		return err
	}
	if err := ensureRunning(ctx, procs, names); err != nil {
		return fmt.Errorf("heal %s: %w", kind, err)
	}
	return nil
}

// Crash kills components with SIGKILL: no deregistration, no drain, exactly what a
// power cut or OOM kill does. Healing restarts them with the same data.
type Crash struct {
	Target   string        `yaml:"target" json:"target"`
	Pick     string        `yaml:"pick,omitempty" json:"pick,omitempty"`
	Duration time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	st       procFaultState
}

// Validate checks the attributes.
func (f *Crash) Validate() []error {
	return append(checkProcTarget(f.Target, f.Pick), checkDuration("duration", f.Duration)...)
}

// Targets names the component or service.
func (f *Crash) Targets() []string { return []string{f.Target} }

// Inject kills the target components.
func (f *Crash) Inject(ctx context.Context, env Env) error {
	procs, err := procsOf(env, "inject", "crash")
	if err != nil {
		return err
	}
	names, err := resolveProcs(procs, f.Target, f.Pick)
	if err != nil {
		return fmt.Errorf("inject crash: %w", err)
	}
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if len(f.st.names) > 0 {
		return errors.New("inject crash: already injected; heal it first")
	}
	var errs []error
	for _, n := range names {
		// Record before killing: a kill that errors may still have landed.
		f.st.names = append(f.st.names, n)
		if err := procs.Kill(n); err != nil {
			errs = append(errs, fmt.Errorf("kill %s: %w", n, err))
		}
	}
	f.st.arm(f.Duration, func() { _ = f.Heal(context.Background(), env) })
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("inject crash: %w", err)
	}
	return nil
}

// Heal restarts the killed components that are still down.
func (f *Crash) Heal(ctx context.Context, env Env) error {
	return f.st.heal(ctx, env, "crash")
}

// Measure counts the killed components that are observably not running.
func (f *Crash) Measure(ctx context.Context, env Env) (Effect, error) {
	return measureProcs(ctx, env, "crash", f.st.recorded(), func(procs Processes, n string) (bool, string, bool) {
		running := procs.Running(n)
		return !running, fmt.Sprintf("running=%t", running), true
	})
}

// measureProcs polls check for each name; check reports whether the effect shows, how it
// was observed, and whether it can be observed at all (if not, waiting is pointless).
func measureProcs(ctx context.Context, env Env, kind string, names []string, check func(Processes, string) (hit bool, how string, observable bool)) (Effect, error) {
	eff := Effect{Kind: kind, Configured: float64(len(names)), Unit: "processes"}
	if len(names) == 0 {
		return eff, fmt.Errorf("measure %s: not injected", kind)
	}
	procs, err := procsOf(env, "measure", kind)
	if err != nil {
		return eff, err
	}
	var details []string
	for _, n := range names {
		var how string
		observable := true
		ok := poll(ctx, observeWithin, func() bool {
			var hit bool
			hit, how, observable = check(procs, n)
			return hit || !observable
		}) && observable
		if ok {
			eff.Measured++
		}
		details = append(details, n+": "+how)
	}
	if err := ctx.Err(); err != nil {
		return eff, fmt.Errorf("measure %s: %w", kind, err)
	}
	eff.Landed = eff.Measured == eff.Configured
	eff.Detail = strings.Join(details, "; ")
	return eff, nil
}

// Pause freezes components with SIGSTOP until healed (SIGCONT): the process holds its
// sockets and leases but answers nothing, the nastiest kind of slow.
type Pause struct {
	Target   string        `yaml:"target" json:"target"`
	Pick     string        `yaml:"pick,omitempty" json:"pick,omitempty"`
	Duration time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	st       procFaultState
	inbound  []string // the links that call the paused components
}

// Validate checks the attributes.
func (f *Pause) Validate() []error {
	return append(checkProcTarget(f.Target, f.Pick), checkDuration("duration", f.Duration)...)
}

// Targets names the component or service.
func (f *Pause) Targets() []string { return []string{f.Target} }

// Inject pauses the target components.
func (f *Pause) Inject(ctx context.Context, env Env) error {
	procs, err := procsOf(env, "inject", "pause")
	if err != nil {
		return err
	}
	names, err := resolveProcs(procs, f.Target, f.Pick)
	if err != nil {
		return fmt.Errorf("inject pause: %w", err)
	}
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if len(f.st.names) > 0 {
		return errors.New("inject pause: already injected; heal it first")
	}
	var errs []error
	f.inbound = inboundLinks(env, names)
	for _, n := range names {
		f.st.names = append(f.st.names, n)
		if err := procs.Pause(n); err != nil {
			errs = append(errs, fmt.Errorf("pause %s: %w", n, err))
		}
	}
	f.st.arm(f.Duration, func() { _ = f.Heal(context.Background(), env) })
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("inject pause: %w", err)
	}
	return nil
}

// Heal resumes the paused components.
func (f *Pause) Heal(ctx context.Context, env Env) error {
	names := f.st.take()
	if len(names) == 0 {
		return nil
	}
	procs, err := procsOf(env, "heal", "pause")
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if err := procs.Resume(n); err != nil && procs.Running(n) {
			errs = append(errs, fmt.Errorf("resume %s: %w", n, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("heal pause: %w", err)
	}
	return nil
}

// InjectedLinks names the links that call the paused components. A paused process's
// kernel still accepts connections, so their proxies see every request that tries to
// reach it: a pause that no request tried to cross showed nothing. (A killed process is
// different: its proxies close each connection before it could be counted, so crash,
// crash_loop and restart watch no link.)
func (f *Pause) InjectedLinks() []string {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if len(f.st.names) == 0 {
		return nil
	}
	return slices.Clone(f.inbound)
}

// inboundLinks names the links whose callee is one of names.
func inboundLinks(env Env, names []string) []string {
	if env == nil || env.Links() == nil {
		return nil
	}
	var out []string
	for _, l := range env.Links().All() {
		if slices.Contains(names, l.To) {
			out = append(out, l.Name())
		}
	}
	return out
}

// Measure checks each paused component is stopped: state T in /proc for a local PID, or
// a health endpoint that no longer answers.
func (f *Pause) Measure(ctx context.Context, env Env) (Effect, error) {
	return measureProcs(ctx, env, "pause", f.st.recorded(), func(procs Processes, n string) (bool, string, bool) {
		return stopped(ctx, procs, n)
	})
}

// Restart stops and starts components with their data, the way a deploy does.
type Restart struct {
	Target string `yaml:"target" json:"target"`
	Pick   string `yaml:"pick,omitempty" json:"pick,omitempty"`
	st     procFaultState
	before map[string]int
}

// Validate checks the attributes.
func (f *Restart) Validate() []error { return checkProcTarget(f.Target, f.Pick) }

// Targets names the component or service.
func (f *Restart) Targets() []string { return []string{f.Target} }

// Inject restarts the target components one after the other.
func (f *Restart) Inject(ctx context.Context, env Env) error {
	procs, err := procsOf(env, "inject", "restart")
	if err != nil {
		return err
	}
	names, err := resolveProcs(procs, f.Target, f.Pick)
	if err != nil {
		return fmt.Errorf("inject restart: %w", err)
	}
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if len(f.st.names) > 0 {
		return errors.New("inject restart: already injected; heal it first")
	}
	f.before = map[string]int{}
	var errs []error
	for _, n := range names {
		if p, ok := procs.(PIDs); ok {
			if pid, known := p.PID(n); known {
				f.before[n] = pid
			}
		}
		f.st.names = append(f.st.names, n)
		if err := procs.Restart(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("restart %s: %w", n, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("inject restart: %w", err)
	}
	return nil
}

// Heal starts any restarted component that did not come back.
func (f *Restart) Heal(ctx context.Context, env Env) error {
	return f.st.heal(ctx, env, "restart")
}

// Measure checks each component runs again, as a new process when PIDs are visible.
func (f *Restart) Measure(ctx context.Context, env Env) (Effect, error) {
	f.st.mu.Lock()
	before := f.before
	f.st.mu.Unlock()
	return measureProcs(ctx, env, "restart", f.st.recorded(), func(procs Processes, n string) (bool, string, bool) {
		if !procs.Running(n) {
			return false, "not running", true
		}
		if p, ok := procs.(PIDs); ok {
			pid, known := p.PID(n)
			old, had := before[n]
			if known && had {
				return pid != old, fmt.Sprintf("pid %d -> %d", old, pid), true
			}
		}
		return true, "running", true
	})
}

// CrashLoop kills components every Interval for Duration and restarts them after Down
// (half the interval by default): a process that keeps dying shortly after it starts.
type CrashLoop struct {
	Target   string        `yaml:"target" json:"target"`
	Pick     string        `yaml:"pick,omitempty" json:"pick,omitempty"`
	Interval time.Duration `yaml:"interval" json:"interval"`
	Down     time.Duration `yaml:"down,omitempty" json:"down,omitempty"`
	Duration time.Duration `yaml:"duration" json:"duration"`

	mu       sync.Mutex
	names    []string
	cancel   context.CancelFunc
	done     chan struct{}
	start    time.Time
	kills    int
	observed int
}

// Validate checks the attributes.
func (f *CrashLoop) Validate() []error {
	errs := checkProcTarget(f.Target, f.Pick)
	if f.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval: must be positive, got %s", f.Interval))
	}
	if f.Duration <= 0 {
		errs = append(errs, fmt.Errorf("duration: must be positive, got %s", f.Duration))
	}
	if f.Down < 0 || (f.Interval > 0 && f.Down >= f.Interval) {
		errs = append(errs, fmt.Errorf("down: must be between 0 and interval (%s), got %s", f.Interval, f.Down))
	}
	return errs
}

// Targets names the component or service.
func (f *CrashLoop) Targets() []string { return []string{f.Target} }

func (f *CrashLoop) down() time.Duration {
	if f.Down > 0 {
		return f.Down
	}
	return f.Interval / 2
}

// Inject kills the targets at once and starts the loop that restarts and kills them
// again until Duration has passed or the fault is healed.
func (f *CrashLoop) Inject(ctx context.Context, env Env) error {
	procs, err := procsOf(env, "inject", "crash_loop")
	if err != nil {
		return err
	}
	if f.Interval <= 0 || f.Duration <= 0 {
		return fmt.Errorf("inject crash_loop: interval and duration must be positive, got %s and %s", f.Interval, f.Duration)
	}
	names, err := resolveProcs(procs, f.Target, f.Pick)
	if err != nil {
		return fmt.Errorf("inject crash_loop: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done != nil {
		return errors.New("inject crash_loop: already injected; heal it first")
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.names, f.cancel, f.done, f.kills, f.observed = names, cancel, make(chan struct{}), 0, 0
	start := time.Now()
	f.start = start
	if err := f.killRound(loopCtx, procs); err != nil {
		cancel()
		close(f.done)
		return fmt.Errorf("inject crash_loop: %w", err)
	}
	go f.loop(loopCtx, procs, start, f.done)
	return nil
}

// killRound kills every target; the caller holds f.mu or owns the loop.
func (f *CrashLoop) killRound(ctx context.Context, procs Processes) error {
	var errs []error
	for _, n := range f.names {
		if err := procs.Kill(n); err != nil {
			errs = append(errs, fmt.Errorf("kill %s: %w", n, err))
		}
	}
	f.kills++
	return errors.Join(errs...)
}

func (f *CrashLoop) loop(ctx context.Context, procs Processes, start time.Time, done chan struct{}) {
	defer close(done)
	wait := func(until time.Time) bool {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	end := start.Add(f.Duration)
	for round := 1; ; round++ {
		roundStart := start.Add(time.Duration(round-1) * f.Interval)
		// Observe the kill while the targets are meant to be down.
		if poll(ctx, min(f.down(), observeWithin), func() bool {
			for _, n := range f.names {
				if procs.Running(n) {
					return false
				}
			}
			return true
		}) {
			f.mu.Lock()
			f.observed++
			f.mu.Unlock()
		}
		if !wait(roundStart.Add(f.down())) {
			return
		}
		_ = ensureRunning(ctx, procs, f.names)
		next := start.Add(time.Duration(round) * f.Interval)
		if !next.Before(end) || !wait(next) {
			return
		}
		f.mu.Lock()
		_ = f.killRound(ctx, procs)
		f.mu.Unlock()
	}
}

// Heal stops the loop and restarts whatever it left down.
func (f *CrashLoop) Heal(ctx context.Context, env Env) error {
	f.mu.Lock()
	cancel, done, names := f.cancel, f.done, f.names
	f.cancel, f.done = nil, nil
	f.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	<-done
	procs, err := procsOf(env, "heal", "crash_loop")
	if err != nil {
		return err
	}
	if err := ensureRunning(ctx, procs, names); err != nil {
		return fmt.Errorf("heal crash_loop: %w", err)
	}
	return nil
}

// rounds is how many kill rounds Duration allows.
func (f *CrashLoop) rounds() int {
	return int(math.Ceil(float64(f.Duration) / float64(max(f.Interval, 1))))
}

// Measure reports the rounds so far against the rounds Duration allows; the fault landed
// once a round was observed to take every target down. It is a first look: the harness
// measures a crash loop with MeasureWindow at the end of its window.
func (f *CrashLoop) Measure(ctx context.Context, env Env) (Effect, error) {
	eff := Effect{Kind: "crash_loop", Configured: float64(f.rounds()), Unit: "kills"}
	f.mu.Lock()
	injected := f.names != nil
	f.mu.Unlock()
	if !injected {
		return eff, errors.New("measure crash_loop: not injected")
	}
	poll(ctx, observeWithin, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.observed > 0
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	eff.Measured = float64(f.kills)
	eff.Landed = f.observed > 0
	eff.Detail = fmt.Sprintf("%d kill rounds, %d observed down", f.kills, f.observed)
	return eff, nil
}

// roundSlack is how close to the end of the window a round may fall and not be due: the
// heal and a round's timer racing at the same instant must not decide the verdict.
const roundSlack = 50 * time.Millisecond

// MeasureWindow counts the rounds over the loop's window, up to now (the window's end):
// Configured is the rounds due by then (every Interval from injection, within Duration),
// Measured the rounds observed to take every target down. It landed when every round due
// was observed. It gives the last round's observation a moment to finish first.
func (f *CrashLoop) MeasureWindow(ctx context.Context, env Env) (Effect, error) {
	eff := Effect{Kind: "crash_loop", Unit: "kills"}
	f.mu.Lock()
	injected, start := f.names != nil, f.start
	f.mu.Unlock()
	if !injected {
		return eff, errors.New("measure crash_loop: not injected")
	}
	elapsed := min(time.Since(start)-roundSlack, f.Duration)
	due := 0
	for k := 0; k < f.rounds() && time.Duration(k)*f.Interval < max(elapsed, 1); k++ {
		due++
	}
	eff.Configured = float64(due)
	poll(ctx, min(f.down(), observeWithin), func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.observed >= f.kills
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	eff.Measured = float64(min(f.observed, f.kills))
	eff.Landed = f.observed >= due && due > 0
	eff.Detail = fmt.Sprintf("%d kill rounds, %d observed down, %d due in %s of the loop", f.kills, f.observed, due, time.Since(start).Round(time.Millisecond))
	return eff, nil
}

var (
	_ Fault     = (*Crash)(nil)
	_ Measurer  = (*Crash)(nil)
	_ Validator = (*Pause)(nil)
	_ Targeted  = (*Pause)(nil)
	_ Measurer  = (*Pause)(nil)
	_ LinkFault = (*Pause)(nil)
	_ Measurer  = (*Restart)(nil)
	_ Measurer  = (*CrashLoop)(nil)

	_ WindowMeasurer = (*CrashLoop)(nil)
)
