package faults

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func init() {
	Register("latency", func() Fault { return &Latency{} })
	Register("bandwidth", func() Fault { return &Bandwidth{} })
	Register("slow_close", func() Fault { return &SlowClose{} })
	Register("timeout", func() Fault { return &Timeout{} })
	Register("reset_peer", func() Fault { return &ResetPeer{} })
	Register("slicer", func() Fault { return &Slicer{} })
	Register("limit_data", func() Fault { return &LimitData{} })
	Register("down", func() Fault { return &Down{} })
}

var holderSeq atomic.Uint64

// linkState is what a network fault remembers between Inject and Heal: exactly the
// toxics and holds it placed, so healing removes its own and nobody else's.
type linkState struct {
	mu     sync.Mutex
	toxics [][2]string // link name, toxic name
	downs  []string    // link names held down
	holder string
	links  []string // every link touched, for Measure
}

func linksOf(env Env, verb, kind string) (*Links, error) {
	if env == nil || env.Links() == nil {
		return nil, fmt.Errorf("%s %s: this run has no links to fault", verb, kind)
	}
	return env.Links(), nil
}

func matchTarget(links *Links, kind, target string) ([]Link, error) {
	from, to, err := parseLinkTarget(target)
	if err != nil {
		return nil, fmt.Errorf("inject %s: %w", kind, err)
	}
	matched := links.Match(from, to)
	if len(matched) == 0 {
		var names []string
		for _, l := range links.All() {
			names = append(names, l.Name())
		}
		return nil, fmt.Errorf("inject %s: no link matches %q (links: %s)", kind, target, strings.Join(names, ", "))
	}
	return matched, nil
}

// inject puts every toxic spec on every link; on any failure it removes what it placed,
// so a half-injected fault never outlives its error.
func (s *linkState) inject(ctx context.Context, links *Links, kind string, matched []Link, specs []Toxic, down bool, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.links) > 0 {
		return fmt.Errorf("inject %s: already injected; heal it first", kind)
	}
	s.holder = fmt.Sprintf("%s#%d", kind, holderSeq.Add(1))
	for _, l := range matched {
		name := l.Name()
		s.links = append(s.links, name)
		if down {
			if err := links.Disable(ctx, name, s.holder, ttl); err != nil {
				s.undo(context.WithoutCancel(ctx), links)
				return fmt.Errorf("inject %s: %w", kind, err)
			}
			s.downs = append(s.downs, name)
			continue
		}
		for _, spec := range specs {
			spec.TTL = ttl
			tname, err := links.AddToxic(ctx, name, spec)
			if err != nil {
				s.undo(context.WithoutCancel(ctx), links)
				return fmt.Errorf("inject %s: %w", kind, err)
			}
			s.toxics = append(s.toxics, [2]string{name, tname})
		}
	}
	return nil
}

func (s *linkState) undo(ctx context.Context, links *Links) error {
	var errs []error
	for _, t := range s.toxics {
		if err := links.RemoveToxic(ctx, t[0], t[1]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range s.downs {
		if err := links.Enable(ctx, name, s.holder); err != nil {
			errs = append(errs, err)
		}
	}
	s.toxics, s.downs, s.links = nil, nil, nil
	return errors.Join(errs...)
}

func (s *linkState) heal(ctx context.Context, env Env, kind string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.links) == 0 {
		return nil
	}
	links, err := linksOf(env, "heal", kind)
	if err != nil {
		return err
	}
	if err := s.undo(ctx, links); err != nil {
		return fmt.Errorf("heal %s: %w", kind, err)
	}
	return nil
}

func (s *linkState) injected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.links...)
}

func toxicSpecs(typ, direction string, toxicity float64, attrs any) []Toxic {
	var out []Toxic
	for _, st := range streamsFor(direction) {
		out = append(out, Toxic{Type: typ, Stream: st, Toxicity: toxicity, Attributes: attrs})
	}
	return out
}

func injectToxics(ctx context.Context, env Env, s *linkState, kind, target string, specs []Toxic, ttl time.Duration) error {
	links, err := linksOf(env, "inject", kind)
	if err != nil {
		return err
	}
	matched, err := matchTarget(links, kind, target)
	if err != nil {
		return err
	}
	return s.inject(ctx, links, kind, matched, specs, false, ttl)
}

// delayTolerance is how far a measured delay may lie from want: 10 %, at least 5 ms for
// the machine's noise, and never more than half of want, so that a delay of nothing is
// never within it.
func delayTolerance(want time.Duration) time.Duration {
	return min(max(want/10, 5*time.Millisecond), want/2)
}

// Latency delays data on a link. With direction both each way is delayed, so a request
// and its answer take twice the latency longer.
type Latency struct {
	Target    string        `yaml:"target" json:"target"`
	Latency   time.Duration `yaml:"latency" json:"latency"`
	Jitter    time.Duration `yaml:"jitter,omitempty" json:"jitter,omitempty"`
	Direction string        `yaml:"direction,omitempty" json:"direction,omitempty"`
	// Toxicity is the share of connections delayed, in (0, 1]; 0 means all of them.
	Toxicity float64 `yaml:"toxicity,omitempty" json:"toxicity,omitempty"`
	// Duration, when set, arms a dead-man timer that heals the fault after that long.
	Duration time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	st       linkState
}

// Validate checks the attributes.
func (f *Latency) Validate() []error {
	errs := checkLinkTarget(f.Target)
	if f.Latency <= 0 {
		errs = append(errs, fmt.Errorf("latency: must be positive, got %s", f.Latency))
	}
	if f.Jitter < 0 || (f.Latency > 0 && f.Jitter > f.Latency) {
		errs = append(errs, fmt.Errorf("jitter: must be between 0 and latency (%s), got %s", f.Latency, f.Jitter))
	}
	errs = append(errs, checkDirection(f.Direction)...)
	if f.Toxicity < 0 || f.Toxicity > 1 {
		errs = append(errs, fmt.Errorf("toxicity: must be between 0 and 1, got %g", f.Toxicity))
	}
	return append(errs, checkDuration("duration", f.Duration)...)
}

// Targets names the link's two ends.
func (f *Latency) Targets() []string { return linkTargets(f.Target) }

// Inject adds a latency toxic on every matching link.
func (f *Latency) Inject(ctx context.Context, env Env) error {
	attrs := map[string]any{"latency": ms(f.Latency), "jitter": ms(f.Jitter)}
	return injectToxics(ctx, env, &f.st, "latency", f.Target, toxicSpecs("latency", f.Direction, f.Toxicity, attrs), f.Duration)
}

// Heal removes the toxics this fault added.
func (f *Latency) Heal(ctx context.Context, env Env) error { return f.st.heal(ctx, env, "latency") }

// InjectedLinks names the links the fault is in place on.
func (f *Latency) InjectedLinks() []string { return f.st.injected() }

// Measure compares time to first byte through each proxy with the same probe straight to
// the upstream; the difference is the added latency (with jitter, the difference of the
// means, and the spread next to the jitter's). Effect.Tolerance is the allowance the
// verdict used, always less than the latency itself.
func (f *Latency) Measure(ctx context.Context, env Env) (Effect, error) {
	links, err := linksOf(env, "measure", "latency")
	if err != nil {
		return Effect{Kind: "latency"}, err
	}
	ls := newLatencySpec(f.Latency, f.Jitter, len(streamsFor(f.Direction)), links.samples, f.Toxicity)
	eff, err := measureLinks(ctx, env, "latency", &f.st, msf(ls.want), "ms", func(ctx context.Context, l *Links, name string) linkResult {
		return measureLatency(ctx, l, name, ls)
	})
	eff.Tolerance = msf(ls.tol)
	return eff, err
}

// Bandwidth caps a link's throughput at Rate kilobytes (1000 bytes) per second.
type Bandwidth struct {
	Target    string        `yaml:"target" json:"target"`
	Rate      int64         `yaml:"rate" json:"rate"`
	Direction string        `yaml:"direction,omitempty" json:"direction,omitempty"`
	Duration  time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	st        linkState
}

// Validate checks the attributes.
func (f *Bandwidth) Validate() []error {
	errs := checkLinkTarget(f.Target)
	if f.Rate <= 0 {
		errs = append(errs, fmt.Errorf("rate: must be a positive number of KB/s, got %d", f.Rate))
	}
	errs = append(errs, checkDirection(f.Direction)...)
	return append(errs, checkDuration("duration", f.Duration)...)
}

// Targets names the link's two ends.
func (f *Bandwidth) Targets() []string { return linkTargets(f.Target) }

// Inject adds a bandwidth toxic on every matching link.
func (f *Bandwidth) Inject(ctx context.Context, env Env) error {
	return injectToxics(ctx, env, &f.st, "bandwidth", f.Target, toxicSpecs("bandwidth", f.Direction, 0, map[string]any{"rate": f.Rate}), f.Duration)
}

// Heal removes the toxics this fault added.
func (f *Bandwidth) Heal(ctx context.Context, env Env) error { return f.st.heal(ctx, env, "bandwidth") }

// InjectedLinks names the links the fault is in place on.
func (f *Bandwidth) InjectedLinks() []string { return f.st.injected() }

// Measure times an echoed transfer through the proxy. It needs an upstream that answers
// with at least a fifth of a second's worth of data at the configured rate (an echo
// server does); otherwise the effect is reported as not measurable, not as landed.
func (f *Bandwidth) Measure(ctx context.Context, env Env) (Effect, error) {
	return measureLinks(ctx, env, "bandwidth", &f.st, float64(f.Rate), "KB/s", func(ctx context.Context, l *Links, name string) linkResult {
		return measureBandwidth(ctx, l, name, f.Rate)
	})
}

// SlowClose delays the close of a connection by Delay after the far end closed it.
type SlowClose struct {
	Target    string        `yaml:"target" json:"target"`
	Delay     time.Duration `yaml:"delay" json:"delay"`
	Direction string        `yaml:"direction,omitempty" json:"direction,omitempty"`
	Duration  time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	st        linkState
}

// Validate checks the attributes.
func (f *SlowClose) Validate() []error {
	errs := checkLinkTarget(f.Target)
	if f.Delay <= 0 {
		errs = append(errs, fmt.Errorf("delay: must be positive, got %s", f.Delay))
	}
	errs = append(errs, checkDirection(f.Direction)...)
	return append(errs, checkDuration("duration", f.Duration)...)
}

// Targets names the link's two ends.
func (f *SlowClose) Targets() []string { return linkTargets(f.Target) }

// Inject adds a slow_close toxic on every matching link.
func (f *SlowClose) Inject(ctx context.Context, env Env) error {
	return injectToxics(ctx, env, &f.st, "slow_close", f.Target, toxicSpecs("slow_close", f.Direction, 0, map[string]any{"delay": ms(f.Delay)}), f.Duration)
}

// Heal removes the toxics this fault added.
func (f *SlowClose) Heal(ctx context.Context, env Env) error {
	return f.st.heal(ctx, env, "slow_close")
}

// InjectedLinks names the links the fault is in place on.
func (f *SlowClose) InjectedLinks() []string { return f.st.injected() }

// Measure half-closes a probe and times the end of the connection through the proxy
// against the upstream directly; the difference is the added close delay.
func (f *SlowClose) Measure(ctx context.Context, env Env) (Effect, error) {
	want := time.Duration(len(streamsFor(f.Direction))) * f.Delay
	tol := delayTolerance(want)
	eff, err := measureLinks(ctx, env, "slow_close", &f.st, float64(want.Milliseconds()), "ms", func(ctx context.Context, l *Links, name string) linkResult {
		return measureSlowClose(ctx, l, name, want, tol)
	})
	eff.Tolerance = msf(tol)
	return eff, err
}

// Timeout black-holes a link: data stops flowing. With Timeout zero nothing comes back
// until the fault is healed (a partition's signature); otherwise the connection is closed
// after Timeout. Direction defaults to both, since a real black hole eats both ways.
type Timeout struct {
	Target    string        `yaml:"target" json:"target"`
	Timeout   time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Direction string        `yaml:"direction,omitempty" json:"direction,omitempty"`
	Duration  time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	st        linkState
}

func (f *Timeout) direction() string {
	if f.Direction == "" {
		return "both"
	}
	return f.Direction
}

// Validate checks the attributes.
func (f *Timeout) Validate() []error {
	errs := checkLinkTarget(f.Target)
	errs = append(errs, checkDuration("timeout", f.Timeout)...)
	errs = append(errs, checkDirection(f.Direction)...)
	return append(errs, checkDuration("duration", f.Duration)...)
}

// Targets names the link's two ends.
func (f *Timeout) Targets() []string { return linkTargets(f.Target) }

// Inject adds a timeout toxic on every matching link.
func (f *Timeout) Inject(ctx context.Context, env Env) error {
	return injectToxics(ctx, env, &f.st, "timeout", f.Target, toxicSpecs("timeout", f.direction(), 0, map[string]any{"timeout": ms(f.Timeout)}), f.Duration)
}

// Heal removes the toxics this fault added; connections held in the black hole close.
func (f *Timeout) Heal(ctx context.Context, env Env) error { return f.st.heal(ctx, env, "timeout") }

// InjectedLinks names the links the fault is in place on.
func (f *Timeout) InjectedLinks() []string { return f.st.injected() }

// Measure probes through the proxy: a black hole must stay silent for the whole probe
// while the upstream answers directly; a timed one must close with no data at ~Timeout.
func (f *Timeout) Measure(ctx context.Context, env Env) (Effect, error) {
	if f.Timeout == 0 {
		return measureLinks(ctx, env, "timeout", &f.st, 1, "silent", func(ctx context.Context, l *Links, name string) linkResult {
			return measureOutcome(ctx, l, name, OutcomeSilent, 0)
		})
	}
	tol := delayTolerance(f.Timeout)
	eff, err := measureLinks(ctx, env, "timeout", &f.st, float64(f.Timeout.Milliseconds()), "ms", func(ctx context.Context, l *Links, name string) linkResult {
		return measureTimedClose(ctx, l, name, f.Timeout, tol)
	})
	eff.Tolerance = msf(tol)
	return eff, err
}

// ResetPeer answers data with a TCP reset after Timeout (0: at once), the way a crashed
// or overloaded peer's kernel does.
type ResetPeer struct {
	Target    string        `yaml:"target" json:"target"`
	Timeout   time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Direction string        `yaml:"direction,omitempty" json:"direction,omitempty"`
	Duration  time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	st        linkState
}

// Validate checks the attributes.
func (f *ResetPeer) Validate() []error {
	errs := checkLinkTarget(f.Target)
	errs = append(errs, checkDuration("timeout", f.Timeout)...)
	errs = append(errs, checkDirection(f.Direction)...)
	return append(errs, checkDuration("duration", f.Duration)...)
}

// Targets names the link's two ends.
func (f *ResetPeer) Targets() []string { return linkTargets(f.Target) }

// Inject adds a reset_peer toxic on every matching link.
func (f *ResetPeer) Inject(ctx context.Context, env Env) error {
	return injectToxics(ctx, env, &f.st, "reset_peer", f.Target, toxicSpecs("reset_peer", f.Direction, 0, map[string]any{"timeout": ms(f.Timeout)}), f.Duration)
}

// Heal removes the toxics this fault added.
func (f *ResetPeer) Heal(ctx context.Context, env Env) error {
	return f.st.heal(ctx, env, "reset_peer")
}

// InjectedLinks names the links the fault is in place on.
func (f *ResetPeer) InjectedLinks() []string { return f.st.injected() }

// Measure expects a probe through the proxy to end in a reset.
func (f *ResetPeer) Measure(ctx context.Context, env Env) (Effect, error) {
	return measureLinks(ctx, env, "reset_peer", &f.st, 1, "reset", func(ctx context.Context, l *Links, name string) linkResult {
		return measureOutcome(ctx, l, name, OutcomeReset, f.Timeout)
	})
}

// Slicer splits data into small writes of about AverageSize bytes (± SizeVariation),
// Delay apart, exercising callers that assume one read is one message.
type Slicer struct {
	Target        string        `yaml:"target" json:"target"`
	AverageSize   int           `yaml:"average_size" json:"average_size"`
	SizeVariation int           `yaml:"size_variation,omitempty" json:"size_variation,omitempty"`
	Delay         time.Duration `yaml:"delay,omitempty" json:"delay,omitempty"`
	Direction     string        `yaml:"direction,omitempty" json:"direction,omitempty"`
	Duration      time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	st            linkState
}

// Validate checks the attributes.
func (f *Slicer) Validate() []error {
	errs := checkLinkTarget(f.Target)
	if f.AverageSize <= 0 {
		errs = append(errs, fmt.Errorf("average_size: must be a positive number of bytes, got %d", f.AverageSize))
	}
	if f.SizeVariation < 0 || (f.AverageSize > 0 && f.SizeVariation >= f.AverageSize) {
		errs = append(errs, fmt.Errorf("size_variation: must be between 0 and average_size (%d), got %d", f.AverageSize, f.SizeVariation))
	}
	errs = append(errs, checkDuration("delay", f.Delay)...)
	errs = append(errs, checkDirection(f.Direction)...)
	return append(errs, checkDuration("duration", f.Duration)...)
}

// Targets names the link's two ends.
func (f *Slicer) Targets() []string { return linkTargets(f.Target) }

// Inject adds a slicer toxic on every matching link.
func (f *Slicer) Inject(ctx context.Context, env Env) error {
	attrs := map[string]any{"average_size": f.AverageSize, "size_variation": f.SizeVariation, "delay": f.Delay.Microseconds()}
	return injectToxics(ctx, env, &f.st, "slicer", f.Target, toxicSpecs("slicer", f.Direction, 0, attrs), f.Duration)
}

// Heal removes the toxics this fault added.
func (f *Slicer) Heal(ctx context.Context, env Env) error { return f.st.heal(ctx, env, "slicer") }

// InjectedLinks names the links the fault is in place on.
func (f *Slicer) InjectedLinks() []string { return f.st.injected() }

// Measure reads an echoed transfer and reports the mean read size; it landed when the
// proxy's answer arrives in more reads than the upstream's direct one.
func (f *Slicer) Measure(ctx context.Context, env Env) (Effect, error) {
	return measureLinks(ctx, env, "slicer", &f.st, float64(f.AverageSize), "bytes/read", func(ctx context.Context, l *Links, name string) linkResult {
		return measureSlicer(ctx, l, name, f.AverageSize+f.SizeVariation)
	})
}

// LimitData closes a connection once Bytes have passed.
type LimitData struct {
	Target    string        `yaml:"target" json:"target"`
	Bytes     int64         `yaml:"bytes" json:"bytes"`
	Direction string        `yaml:"direction,omitempty" json:"direction,omitempty"`
	Duration  time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	st        linkState
}

// Validate checks the attributes.
func (f *LimitData) Validate() []error {
	errs := checkLinkTarget(f.Target)
	if f.Bytes <= 0 {
		errs = append(errs, fmt.Errorf("bytes: must be positive, got %d", f.Bytes))
	}
	errs = append(errs, checkDirection(f.Direction)...)
	return append(errs, checkDuration("duration", f.Duration)...)
}

// Targets names the link's two ends.
func (f *LimitData) Targets() []string { return linkTargets(f.Target) }

// Inject adds a limit_data toxic on every matching link.
func (f *LimitData) Inject(ctx context.Context, env Env) error {
	return injectToxics(ctx, env, &f.st, "limit_data", f.Target, toxicSpecs("limit_data", f.Direction, 0, map[string]any{"bytes": f.Bytes}), f.Duration)
}

// Heal removes the toxics this fault added.
func (f *LimitData) Heal(ctx context.Context, env Env) error {
	return f.st.heal(ctx, env, "limit_data")
}

// InjectedLinks names the links the fault is in place on.
func (f *LimitData) InjectedLinks() []string { return f.st.injected() }

// Measure sends more than Bytes to an echoing upstream and expects the proxy to close
// after at most Bytes came back.
func (f *LimitData) Measure(ctx context.Context, env Env) (Effect, error) {
	return measureLinks(ctx, env, "limit_data", &f.st, float64(f.Bytes), "bytes", func(ctx context.Context, l *Links, name string) linkResult {
		return measureLimit(ctx, l, name, f.Bytes)
	})
}

// Down takes a link's proxy away: callers are refused, and open connections are dropped.
type Down struct {
	Target   string        `yaml:"target" json:"target"`
	Duration time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	st       linkState
}

// Validate checks the attributes.
func (f *Down) Validate() []error {
	return append(checkLinkTarget(f.Target), checkDuration("duration", f.Duration)...)
}

// Targets names the link's two ends.
func (f *Down) Targets() []string { return linkTargets(f.Target) }

// Inject disables every matching link's proxy.
func (f *Down) Inject(ctx context.Context, env Env) error {
	links, err := linksOf(env, "inject", "down")
	if err != nil {
		return err
	}
	matched, err := matchTarget(links, "down", f.Target)
	if err != nil {
		return err
	}
	return f.st.inject(ctx, links, "down", matched, nil, true, f.Duration)
}

// Heal releases this fault's hold on the links; they come back unless another fault
// still holds them down.
func (f *Down) Heal(ctx context.Context, env Env) error { return f.st.heal(ctx, env, "down") }

// Measure expects connections through the proxy to be refused.
func (f *Down) Measure(ctx context.Context, env Env) (Effect, error) {
	return measureLinks(ctx, env, "down", &f.st, 1, "refused", func(ctx context.Context, l *Links, name string) linkResult {
		return measureOutcome(ctx, l, name, OutcomeRefused, 0)
	})
}

var (
	_ Fault     = (*Latency)(nil)
	_ Validator = (*Latency)(nil)
	_ Targeted  = (*Latency)(nil)
	_ Measurer  = (*Latency)(nil)
	_ Measurer  = (*Bandwidth)(nil)
	_ Measurer  = (*SlowClose)(nil)
	_ Measurer  = (*Timeout)(nil)
	_ Measurer  = (*ResetPeer)(nil)
	_ Measurer  = (*Slicer)(nil)
	_ Measurer  = (*LimitData)(nil)
	_ Measurer  = (*Down)(nil)
	_ Validator = (*Down)(nil)
	_ Targeted  = (*Down)(nil)

	_ LinkFault = (*Latency)(nil)
	_ LinkFault = (*Bandwidth)(nil)
	_ LinkFault = (*SlowClose)(nil)
	_ LinkFault = (*Timeout)(nil)
	_ LinkFault = (*ResetPeer)(nil)
	_ LinkFault = (*Slicer)(nil)
	_ LinkFault = (*LimitData)(nil)
)
