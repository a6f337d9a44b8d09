package faults

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// linkResult is one link's share of a fault's Effect.
type linkResult struct {
	measured float64
	landed   bool
	detail   string
}

// measureLinks measures every link the fault touched, concurrently, and folds the
// results into one Effect: it landed only if it landed on every link, and Measured is the
// first link that missed (or the mean when none did), so the number explains the verdict.
func measureLinks(ctx context.Context, env Env, kind string, st *linkState, configured float64, unit string,
	per func(ctx context.Context, l *Links, name string) linkResult) (Effect, error) {
	eff := Effect{Kind: kind, Configured: configured, Unit: unit}
	names, results, err := measureEach(ctx, env, kind, st, per)
	if err != nil {
		return eff, err
	}
	eff.Landed = true
	details := make([]string, 0, len(results))
	sum, missed := 0.0, false
	for i, r := range results {
		details = append(details, names[i]+": "+r.detail)
		sum += r.measured
		if !r.landed && !missed {
			eff.Landed, missed, eff.Measured = false, true, r.measured
		}
	}
	if !missed {
		eff.Measured = sum / float64(len(results))
	}
	eff.Detail = strings.Join(details, "; ")
	return eff, nil
}

// measureEach runs per on every link the fault touched, concurrently.
func measureEach(ctx context.Context, env Env, kind string, st *linkState,
	per func(ctx context.Context, l *Links, name string) linkResult) ([]string, []linkResult, error) {
	names := st.injected()
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("measure %s: not injected", kind)
	}
	links, err := linksOf(env, "measure", kind)
	if err != nil {
		return nil, nil, err
	}
	results := make([]linkResult, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { results[i] = per(ctx, links, name) })
	}
	wg.Wait()
	if err := ended(ctx); err != nil {
		var got []string
		for i, r := range results {
			if r.detail != "" {
				got = append(got, names[i]+": "+r.detail)
			}
		}
		if len(got) > 0 {
			return nil, nil, fmt.Errorf("measure %s: %w (%s)", kind, err, strings.Join(got, "; "))
		}
		return nil, nil, fmt.Errorf("measure %s: %w", kind, err)
	}
	return names, results, nil
}

// ended reports why measuring must stop: ctx's error, or its deadline once that has
// passed. A probe's socket deadline can fire a moment before ctx's own timer does, and a
// probe cut short by the window must never be mistaken for a link that went silent.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

func responsive(p Probe) bool { return p.Outcome == OutcomeAnswered || p.Outcome == OutcomeClosed }

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// responseTime is how long a probe's payload took to be answered: the reply's first byte,
// or the close when the upstream hung up without a word (a close that follows the
// payload is delayed by an upstream latency all the same).
func responseTime(p Probe) (time.Duration, bool) {
	switch {
	case p.Outcome == OutcomeAnswered:
		return p.FirstByte, true
	case p.Outcome == OutcomeClosed:
		return p.Elapsed, true
	}
	return 0, false
}

// latencySpec is what a latency measurement holds a link to: the added delay a request
// and its answer should see (both streams counted), the spread the jitter gives it, and
// the tolerance the verdict uses.
type latencySpec struct {
	want     time.Duration
	spread   time.Duration // standard deviation of the added delay the jitter causes; 0 without jitter
	samples  int
	tol      time.Duration
	toxicity float64
}

// jitterSamples is how many probes a measurement with jitter takes at least: the mean of
// a uniform jitter settles slowly, and the verdict's allowance for it shrinks with √n.
const jitterSamples = 20

// newLatencySpec derives the measurement of a latency toxic on streams streams.
// Toxiproxy delays each chunk by latency plus a uniform draw from [-jitter, +jitter), so
// each stream adds a delay of mean latency and standard deviation jitter/√3, and the
// streams' delays add up.
//
// The tolerance is max(10 %, 5 ms) of the delay, plus three standard errors of the
// sample mean when there is jitter, and never more than half the delay: a tolerance as
// wide as the delay itself would call a link that added nothing landed.
func newLatencySpec(latency, jitter time.Duration, streams, samples int, toxicity float64) latencySpec {
	s := latencySpec{want: time.Duration(streams) * latency, samples: samples, toxicity: toxicity}
	if jitter > 0 {
		s.spread = time.Duration(float64(jitter) * math.Sqrt(float64(streams)/3))
		s.samples = max(samples, jitterSamples)
	}
	if toxicity > 0 && toxicity < 1 {
		// Enough samples that an affected connection is all but certain to show up.
		s.samples = max(s.samples, min(30, samples*int(math.Ceil(1/toxicity))))
	}
	s.tol = max(s.want/10, 5*time.Millisecond)
	if s.spread > 0 {
		s.tol += time.Duration(3 * float64(s.spread) / math.Sqrt(float64(s.samples)))
	}
	s.tol = min(s.tol, s.want/2) // as in delayTolerance
	return s
}

// measureLatency measures the latency added on one link: the time a probe's payload
// takes to be answered through the proxy, less the same through a bare proxy started
// beside it on the same server (Links.control), or straight to the upstream when the
// server has no room for one.
//
// The bare proxy is the baseline because the fault is the toxic, not the hop: a
// server that carries every edge of a busy system (a Toxiproxy pod at a load spike) adds
// its own delay to everything crossing it, tens of milliseconds on a loaded machine,
// which a direct baseline would count as the toxic's. Through the bare proxy that hop is
// paid on both sides of the comparison, at the same moments.
//
// It first asks the upstream directly whether it speaks first (NATS sends INFO, a gRPC
// server SETTINGS) and in which protocol. The timed answer is then always the reply to
// the probe's own request (PING, an HTTP/2 PING, an HTTP HEAD), which crosses the link
// both ways: an upstream latency delays it as much as a downstream one, where a
// volunteered greeting would show only the downstream half (and a NATS upstream with an
// upstream latency would seem untouched).
//
// The samples run concurrently, a direct and a proxied probe side by side, each pair
// launched a little after the one before, so n samples cost one probe's time and fit in
// a short fault window, and both paths see the same moments of the machine's load.
//
// Without jitter the statistic is the minimum on each path. Scheduler noise on a loaded
// machine only ever makes a probe slower, never faster, and Toxiproxy never releases data
// early (it sleeps the configured delay counted from when it read the data), so the
// fastest sample of a path is the one least disturbed, and min(proxied) - min(direct) is
// the added latency with the noise removed rather than averaged in. Staggering the pairs
// keeps one hiccup (a GC pause in this process, which hosts the proxies) from hitting
// every proxied sample at the same moment.
//
// With jitter the fastest sample is biased towards latency - jitter, so the statistic is
// the distribution instead: the mean of the proxied samples less the mean of their direct
// twins (the noise both paths share cancels), and the proxied samples' spread, reported
// against the spread the jitter should give. One bias remains with an upstream that greets
// (gRPC, NATS): Toxiproxy releases a connection's chunks in order, so a reply queued behind
// the greeting leaves no earlier than the greeting, the larger of two draws (a mean up to a
// third of the jitter high, inside the tolerance). Taking the greeting before writing would
// remove it but double the time a probe takes, which a short window cannot afford.
//
// A round is measured again when it cannot judge the latency: when the bare proxy's own
// hop (its fastest probe less the fastest direct one) exceeds the tolerance, the server
// that carries the toxic delays everything by more than the verdict may be off by, and
// the difference of two such paths says nothing at that precision (on Kubernetes at a
// load spike, hops of 17-210 ms were seen against a 30 ms tolerance). Whether a round
// is measured again depends on its noise only, never on whether it landed, so a latency
// that is off is not given chances to look right: the first round that can judge is the
// answer, and when none can before the fault window ends (or after latencyRounds), the
// quietest round is, with every round's figures in the detail.
func measureLatency(ctx context.Context, l *Links, name string, ls latencySpec) linkResult {
	// What every round shares is set up once: the dialect probe (which waits out a
	// silent upstream's greeting) and the bare proxy, created and deleted on the very
	// server a round measured again waits on to quieten.
	m, err := newLatencyMeasurement(ctx, l, name, ls)
	if err != nil {
		return linkResult{detail: err.Error()}
	}
	defer m.stop()
	var best linkResult
	bestHop := time.Duration(-1)
	var noisy []string
	for round := 1; ; round++ {
		began := time.Now()
		res, hop := m.round(ctx, round)
		if hop <= ls.tol {
			return withNoisyRounds(res, noisy, false)
		}
		noisy = append(noisy, fmt.Sprintf("added %.1fms with a bare-proxy hop of %s", res.measured, hop.Round(time.Millisecond/10)))
		if bestHop < 0 || hop < bestHop {
			best, bestHop = res, hop
		}
		if deadline, ok := ctx.Deadline(); round == latencyRounds || (ok && time.Until(deadline) < time.Since(began)) || ctx.Err() != nil {
			return withNoisyRounds(best, noisy, true)
		}
	}
}

// latencyRounds bounds how often measureLatency measures again.
const latencyRounds = 4

// withNoisyRounds adds to res's detail the rounds measured before it that could not
// judge; quietest says res is the least noisy of rounds that all could not.
func withNoisyRounds(res linkResult, noisy []string, quietest bool) linkResult {
	switch {
	case quietest:
		res.detail += fmt.Sprintf("; the quietest of %d rounds, each with the bare proxy's own hop above the tolerance (%s)", len(noisy), strings.Join(noisy, "; "))
	case len(noisy) > 0:
		res.detail += fmt.Sprintf("; measured again after %d round(s) whose bare proxy's own hop exceeded the tolerance (%s)", len(noisy), strings.Join(noisy, "; "))
	}
	return res
}

// latencyMeasurement is what the rounds of one measureLatency share.
type latencyMeasurement struct {
	l    *Links
	name string
	ls   latencySpec
	// first is the dialect probe straight to the upstream; firstTime its answer's time.
	first     Probe
	firstTime time.Duration
	// spec is every timed probe's; per is how long one takes at the wanted latency.
	spec ProbeSpec
	per  time.Duration
	// probeControl probes through the bare proxy; nil when there is none (controlErr).
	probeControl func(context.Context, ProbeSpec) Probe
	stopControl  func()
	controlErr   error
}

// newLatencyMeasurement asks the upstream directly whether and in which protocol it
// speaks first, and starts the bare proxy beside the link's.
func newLatencyMeasurement(ctx context.Context, l *Links, name string, ls latencySpec) (*latencyMeasurement, error) {
	timeout := 2*ls.want + l.probeTimeout
	first, err := l.ProbeDirect(ctx, name, ProbeSpec{Greeting: l.greetingWait, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	base, ok := responseTime(first)
	if !ok {
		return nil, fmt.Errorf("upstream did not answer directly (%s %s)", first.Outcome, first.Err)
	}
	m := &latencyMeasurement{l: l, name: name, ls: ls, first: first, firstTime: base,
		spec: ProbeSpec{Timeout: timeout}, per: ls.want, stopControl: func() {}}
	switch first.Dialect {
	case DialectNATS, DialectHTTP2:
		// The reply is told apart from the greeting, so the probes write at once and a
		// downstream latency is paid once, not twice (greeting, then reply).
		m.spec.Dialect = first.Dialect
	case DialectOther:
		// The greeting must be taken whole before writing, however long it is held back.
		m.spec.Greeting, m.per = timeout, 2*ls.want
	}
	probe, stop, err := l.control(ctx, name)
	if err != nil {
		m.controlErr = err
	} else {
		m.probeControl, m.stopControl = probe, stop
	}
	return m, nil
}

// stop deletes the bare proxy.
func (m *latencyMeasurement) stop() { m.stopControl() }

// round is one round of measureLatency. hop is the bare proxy's own hop (its fastest
// probe less the fastest direct one of the same round), -1 when there is no bare proxy or
// the round ended before comparing: the round's noise, which decides whether it can judge.
// The dialect probe counts into the first round's direct baseline only.
func (m *latencyMeasurement) round(ctx context.Context, round int) (_ linkResult, hop time.Duration) {
	hop = -1
	l, name, spec, first, probeControl, controlErr := m.l, m.name, m.spec, m.first, m.probeControl, m.controlErr
	ls := m.ls
	want, tol, n := ls.want, ls.tol, ls.samples
	spacing := staggerSpacing(ctx, n, m.per)
	direct, proxied, control := make([]Probe, n), make([]Probe, n), make([]Probe, n)
	var wg sync.WaitGroup
	for i := range n {
		if i > 0 && !sleepCtx(ctx, spacing) {
			break
		}
		wg.Go(func() { direct[i], _ = l.ProbeDirect(ctx, name, spec) })
		wg.Go(func() { proxied[i], _ = l.Probe(ctx, name, spec) })
		if probeControl != nil {
			wg.Go(func() { control[i] = probeControl(ctx, spec) })
		}
	}
	wg.Wait()

	base := time.Duration(-1)
	if round == 1 {
		base = m.firstTime
	}
	var greetDirect, greetProxied []time.Duration
	var directTimes, controlTimes []time.Duration
	for i := range n {
		if d, ok := responseTime(direct[i]); ok {
			if base < 0 || d < base {
				base = d
			}
			directTimes = append(directTimes, d)
		}
		if d, ok := responseTime(control[i]); ok && probeControl != nil {
			controlTimes = append(controlTimes, d)
		}
		if direct[i].Greeting > 0 && proxied[i].Greeting > 0 {
			greetDirect, greetProxied = append(greetDirect, direct[i].Greeting), append(greetProxied, proxied[i].Greeting)
		}
	}
	if base < 0 {
		// No direct probe of a later round answered: the upstream's own time is still
		// the dialect probe's.
		base = m.firstTime
	}
	// ref is what the proxied probes are compared with: the bare proxy's, when every one
	// of its probes was answered, else the direct ones (the detail says why).
	ref, refTimes := base, directTimes
	against := fmt.Sprintf("direct %s", base.Round(time.Millisecond/10))
	switch {
	case controlErr != nil:
		against += fmt.Sprintf(", no bare proxy to compare with (%v)", controlErr)
	case len(controlTimes) == 0 || len(controlTimes) < len(directTimes):
		against += fmt.Sprintf(", %d of %d probes through a bare proxy unanswered", n-len(controlTimes), n)
	default:
		ref, refTimes = slices.Min(controlTimes), controlTimes
		against = fmt.Sprintf("through a bare proxy %s, %s", ref.Round(time.Millisecond/10), against)
		hop = max(0, ref-base)
	}
	var times []time.Duration
	var missing []string
	waited := time.Duration(0)
	for _, p := range proxied {
		t, ok := responseTime(p)
		if !ok {
			missing = append(missing, string(p.Outcome))
			waited = max(waited, p.Elapsed)
			continue
		}
		times = append(times, t)
	}
	if len(missing) > 0 {
		if ended(ctx) != nil {
			return linkResult{measured: msf(waited), detail: fmt.Sprintf("%d of %d probes through the proxy had no answer when measuring had to stop, after %s (at least that much added; want %s ± %s)",
				len(missing), n, waited.Round(time.Millisecond), want, tol)}, -1
		}
		return linkResult{detail: fmt.Sprintf("no answer through the proxy (%s; %d of %d probes)", strings.Join(slices.Compact(slices.Sorted(slices.Values(missing))), ", "), len(missing), n)}, -1
	}
	dialect := ""
	if first.Dialect != "" && first.Dialect != DialectNone {
		dialect = ", upstream speaks " + first.Dialect
		if len(greetProxied) > 0 {
			dialect += fmt.Sprintf(" (greeting +%s)", (slices.Min(greetProxied) - slices.Min(greetDirect)).Round(time.Millisecond/10))
		}
	}
	share := ""
	if ls.toxicity > 0 && ls.toxicity < 1 {
		var hit []time.Duration
		for _, t := range times {
			if t-ref >= want/2 {
				hit = append(hit, t)
			}
		}
		if len(hit) == 0 {
			return linkResult{detail: fmt.Sprintf("no probe of %d was delayed (toxicity %g)", n, ls.toxicity)}, -1
		}
		share = fmt.Sprintf(", %d of %d probes delayed", len(hit), n)
		times = hit
	}
	// Landing takes a real added delay: within tol of want, and tol is less than want.
	within := func(added time.Duration) bool { d := added - want; return d <= tol && d >= -tol }
	if ls.spread == 0 {
		added := slices.Min(times) - ref
		return linkResult{measured: msf(added), landed: within(added),
			detail: fmt.Sprintf("added %s (want %s ± %s; fastest of %d concurrent probes, %s%s%s)",
				added.Round(time.Millisecond/10), want, tol, n, against, share, dialect)}, hop
	}
	mean, sd := meanSD(times)
	refMean, _ := meanSD(refTimes)
	added := mean - refMean
	return linkResult{measured: msf(added), landed: within(added),
		detail: fmt.Sprintf("mean added %s, spread (sd) %s over %d probes (want mean %s ± %s, spread about %s from the jitter; against a mean of %s, %s%s%s)",
			added.Round(time.Millisecond/10), sd.Round(time.Millisecond/10), len(times), want, tol, ls.spread.Round(time.Millisecond/10),
			refMean.Round(time.Millisecond/10), against, share, dialect)}, hop
}

// meanSD is the mean and the (population) standard deviation of ds; zero for none.
func meanSD(ds []time.Duration) (mean, sd time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	var sum float64
	for _, d := range ds {
		sum += float64(d)
	}
	m := sum / float64(len(ds))
	var sq float64
	for _, d := range ds {
		sq += (float64(d) - m) * (float64(d) - m)
	}
	return time.Duration(m), time.Duration(math.Sqrt(sq / float64(len(ds))))
}

// staggerSpacing is the pause between launching successive probe pairs: up to 25 ms, less
// when the context's deadline leaves little room beyond one probe's expected time, so
// the last pair still ends before the fault window does.
func staggerSpacing(ctx context.Context, n int, per time.Duration) time.Duration {
	const most = 25 * time.Millisecond
	if n <= 1 {
		return 0
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return most
	}
	slack := time.Until(deadline) - per - per/5
	return min(most, max(0, slack/time.Duration(2*(n-1))))
}

// sleepCtx waits d or until ctx ends and reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// measureOutcome expects a probe through the proxy to end in want while the upstream
// still answers directly, which proves the proxy, not the callee, caused it.
func measureOutcome(ctx context.Context, l *Links, name string, want Outcome, delay time.Duration) linkResult {
	spec := ProbeSpec{Timeout: l.probeTimeout + delay}
	d, err := l.ProbeDirect(ctx, name, spec)
	if err != nil {
		return linkResult{detail: err.Error()}
	}
	if !responsive(d) {
		return linkResult{detail: fmt.Sprintf("upstream did not answer directly (%s %s)", d.Outcome, d.Err)}
	}
	p, err := l.Probe(ctx, name, spec)
	if err != nil {
		return linkResult{detail: err.Error()}
	}
	r := linkResult{detail: fmt.Sprintf("through the proxy %s after %s, directly %s", p.Outcome, p.Elapsed.Round(time.Millisecond), d.Outcome)}
	if p.Outcome == want {
		r.measured, r.landed = 1, true
	}
	return r
}

// measureTimedClose expects probes through the proxy to be closed, without a byte, after
// timeout. Three run side by side and the earliest close counts, for the reason
// measureLatency takes the minimum: load only ever makes a close late, never early.
func measureTimedClose(ctx context.Context, l *Links, name string, timeout, tol time.Duration) linkResult {
	spec := ProbeSpec{Timeout: timeout + l.probeTimeout}
	d, err := l.ProbeDirect(ctx, name, spec)
	if err != nil {
		return linkResult{detail: err.Error()}
	}
	if !responsive(d) {
		return linkResult{detail: fmt.Sprintf("upstream did not answer directly (%s %s)", d.Outcome, d.Err)}
	}
	probes := make([]Probe, 3)
	var wg sync.WaitGroup
	for i := range probes {
		wg.Go(func() { probes[i], _ = l.Probe(ctx, name, spec) })
	}
	wg.Wait()
	closed := func(q Probe) bool { return (q.Outcome == OutcomeClosed || q.Outcome == OutcomeReset) && q.Bytes == 0 }
	p := probes[0]
	for _, q := range probes[1:] {
		switch {
		case !closed(p):
		case !closed(q):
			p = q // a probe that was not cleanly closed explains the miss
		case q.Elapsed < p.Elapsed:
			p = q
		}
	}
	diff := p.Elapsed - timeout
	return linkResult{measured: msf(p.Elapsed), landed: closed(p) && diff <= tol && diff >= -tol,
		detail: fmt.Sprintf("through the proxy %s with %d bytes after %s (earliest of %d; want closed after %s ± %s)", p.Outcome, p.Bytes, p.Elapsed.Round(time.Millisecond), len(probes), timeout, tol)}
}

// transferPayload is what transfer probes send. They do not half-close: Toxiproxy turns
// a caller's half-close into a full close towards the upstream, which would cut the echo.
func transferPayload(n int64) []byte { return bytes.Repeat([]byte("x"), int(n)) }

const echoNote = "; transfer faults need an echoing upstream or a custom prober"

func measureBandwidth(ctx context.Context, l *Links, name string, rate int64) linkResult {
	size := min(max(rate*1000*3/10, 8<<10), 8<<20) // about 0.3 s worth at the configured rate
	expected := time.Duration(float64(size) / float64(rate*1000) * float64(time.Second))
	spec := ProbeSpec{Payload: transferPayload(size), ReadAll: true, Max: size, Timeout: 10*expected + l.probeTimeout}
	p, err := l.Probe(ctx, name, spec)
	if err != nil {
		return linkResult{detail: err.Error()}
	}
	if p.Bytes < size/2 {
		return linkResult{detail: fmt.Sprintf("only %d of %d bytes came back (%s)%s", p.Bytes, size, p.Outcome, echoNote)}
	}
	kbps := float64(p.Bytes) / 1000 / p.Elapsed.Seconds()
	landed := kbps <= 1.25*float64(rate) && kbps >= 0.5*float64(rate)
	return linkResult{measured: kbps, landed: landed, detail: fmt.Sprintf("%.0f KB/s over %d bytes in %s", kbps, p.Bytes, p.Elapsed.Round(time.Millisecond))}
}

func measureSlowClose(ctx context.Context, l *Links, name string, want, tol time.Duration) linkResult {
	spec := ProbeSpec{CloseWrite: true, ReadAll: true, Timeout: want + 2*l.probeTimeout}
	var direct, proxied []time.Duration
	for range 3 {
		d, err := l.ProbeDirect(ctx, name, spec)
		if err != nil {
			return linkResult{detail: err.Error()}
		}
		if !d.EOF {
			return linkResult{detail: fmt.Sprintf("upstream did not close after answering (%s %s)", d.Outcome, d.Err)}
		}
		p, err := l.Probe(ctx, name, spec)
		if err != nil {
			return linkResult{detail: err.Error()}
		}
		if !p.EOF {
			return linkResult{detail: fmt.Sprintf("no close through the proxy (%s %s)", p.Outcome, p.Err)}
		}
		direct, proxied = append(direct, d.Elapsed), append(proxied, p.Elapsed)
	}
	// The fastest of each path, as in measureLatency: load only ever delays a close.
	added := slices.Min(proxied) - slices.Min(direct)
	diff := added - want
	return linkResult{measured: msf(added), landed: diff <= tol && diff >= -tol,
		detail: fmt.Sprintf("close delayed by %s (want %s ± %s)", added.Round(time.Millisecond/10), want, tol)}
}

func measureSlicer(ctx context.Context, l *Links, name string, maxChunk int) linkResult {
	size := int64(min(max(16*maxChunk, 256), 64<<10))
	spec := ProbeSpec{Payload: transferPayload(size), ReadAll: true, Max: size, Timeout: 2 * l.probeTimeout}
	d, err := l.ProbeDirect(ctx, name, spec)
	if err != nil {
		return linkResult{detail: err.Error()}
	}
	p, err := l.Probe(ctx, name, spec)
	if err != nil {
		return linkResult{detail: err.Error()}
	}
	if p.Bytes <= int64(maxChunk) || p.Reads == 0 {
		return linkResult{detail: fmt.Sprintf("answer of %d bytes is too short to show slicing%s", p.Bytes, echoNote)}
	}
	mean := float64(p.Bytes) / float64(p.Reads)
	return linkResult{measured: mean, landed: p.Reads > d.Reads && p.Reads >= 2,
		detail: fmt.Sprintf("%d bytes in %d reads through the proxy, %d bytes in %d reads directly", p.Bytes, p.Reads, d.Bytes, d.Reads)}
}

func measureLimit(ctx context.Context, l *Links, name string, limit int64) linkResult {
	size := limit + 4096
	spec := ProbeSpec{Payload: transferPayload(size), ReadAll: true, Max: size, Timeout: 2 * l.probeTimeout}
	d, err := l.ProbeDirect(ctx, name, spec)
	if err != nil {
		return linkResult{detail: err.Error()}
	}
	if d.Bytes <= limit {
		return linkResult{detail: fmt.Sprintf("upstream answered only %d bytes directly, not more than the %d-byte limit%s", d.Bytes, limit, echoNote)}
	}
	p, err := l.Probe(ctx, name, spec)
	if err != nil {
		return linkResult{detail: err.Error()}
	}
	ended := p.EOF || p.Outcome == OutcomeReset
	return linkResult{measured: float64(p.Bytes), landed: ended && p.Bytes <= limit,
		detail: fmt.Sprintf("%d bytes then %s through the proxy, %d bytes directly", p.Bytes, p.Outcome, d.Bytes)}
}
