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
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("measure %s: %w", kind, err)
	}
	return names, results, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func responsive(p Probe) bool { return p.Outcome == OutcomeAnswered || p.Outcome == OutcomeClosed }

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func measureLatency(ctx context.Context, l *Links, name string, want, tol time.Duration, toxicity float64) linkResult {
	spec := ProbeSpec{Timeout: 2*want + l.probeTimeout}
	n := l.samples
	if toxicity > 0 && toxicity < 1 {
		// Enough samples that an affected connection is all but certain to show up.
		n = min(30, n*int(math.Ceil(1/toxicity)))
	}
	var direct, proxied []time.Duration
	for range n {
		d, err := l.ProbeDirect(ctx, name, spec)
		if err != nil {
			return linkResult{detail: err.Error()}
		}
		if d.Outcome != OutcomeAnswered {
			return linkResult{detail: fmt.Sprintf("upstream did not answer directly (%s %s)", d.Outcome, d.Err)}
		}
		p, err := l.Probe(ctx, name, spec)
		if err != nil {
			return linkResult{detail: err.Error()}
		}
		if p.Outcome != OutcomeAnswered {
			return linkResult{detail: fmt.Sprintf("no answer through the proxy (%s %s)", p.Outcome, p.Err)}
		}
		direct, proxied = append(direct, d.FirstByte), append(proxied, p.FirstByte)
	}
	base := median(direct)
	added := median(proxied) - base
	share := ""
	if toxicity > 0 && toxicity < 1 {
		var hit []time.Duration
		for _, p := range proxied {
			if p-base >= want/2 {
				hit = append(hit, p-base)
			}
		}
		if len(hit) == 0 {
			return linkResult{detail: fmt.Sprintf("no probe of %d was delayed (toxicity %g)", n, toxicity)}
		}
		added = median(hit)
		share = fmt.Sprintf(", %d of %d probes delayed", len(hit), n)
	}
	diff := added - want
	landed := diff <= tol && diff >= -tol
	return linkResult{measured: msf(added), landed: landed,
		detail: fmt.Sprintf("added %s (want %s ± %s, direct %s%s)", added.Round(time.Millisecond/10), want, tol, base.Round(time.Millisecond/10), share)}
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

func measureTimedClose(ctx context.Context, l *Links, name string, timeout, tol time.Duration) linkResult {
	spec := ProbeSpec{Timeout: timeout + l.probeTimeout}
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
	r := linkResult{measured: msf(p.Elapsed), detail: fmt.Sprintf("through the proxy %s with %d bytes after %s (want closed after %s ± %s)", p.Outcome, p.Bytes, p.Elapsed.Round(time.Millisecond), timeout, tol)}
	closed := p.Outcome == OutcomeClosed || p.Outcome == OutcomeReset
	diff := p.Elapsed - timeout
	r.landed = closed && p.Bytes == 0 && diff <= tol && diff >= -tol
	return r
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
	added := median(proxied) - median(direct)
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
