package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Header names the generator reads from answers.
const (
	HeaderServedBy = "X-Served-By"
	HeaderFallback = "X-Fallback"
	HeaderReplayed = "Idempotent-Replayed"
	// HeaderSeq is sent with every request so that server logs can be joined with the
	// history.
	HeaderSeq = "X-Faultline-Seq"
)

// fragment marks a request's URL with its sequence number. A fragment is never sent on the
// wire, yet vegeta copies the URL into its result, even for requests that failed before any
// answer, which is how a result finds its plan again.
const fragment = "#fl"

// grace is how long after the end of the rate curve vegeta may still send requests it fell
// behind on before the load stops.
const grace = 500 * time.Millisecond

var errStopped = errors.New("load stopped")

type runConfig struct {
	epoch               time.Time
	backoff, maxBackoff time.Duration
}

// Option configures Run and RunTargets.
type Option func(*runConfig)

// WithEpoch measures Result.Planned and Result.Start from epoch (the run's start, shared
// with the history) instead of from the start of the load.
func WithEpoch(epoch time.Time) Option { return func(c *runConfig) { c.epoch = epoch } }

// Run sends the load spec plans to target (a base URL such as http://127.0.0.1:8080) until
// the plan is done or ctx ends, calls sink with every result as it completes (from one
// goroutine, in completion order; a slow sink slows the load rather than queueing results)
// and returns the aggregate. A request the plan cannot build (a template error) stops the
// load and is returned as the error. It is RunTargets with one target.
func Run(ctx context.Context, spec Spec, target string, sink func(Result), opts ...Option) (Summary, error) {
	return RunTargets(ctx, spec, []string{target}, sink, opts...)
}

// RunTargets is Run against a deployment with several entry points (base URLs of
// gateways), as its clients see it: virtual client c sends to targets[c mod n] while that
// answers, and after a transport failure there (connection refused, reset or closed, dial
// timeout) moves its following requests to the next target for a back-off (WithBackoff),
// probing the lost one until it answers again. The request that met the failure stays
// failed: the generator never re-sends it. Result.Target records where each request went.
// The choice is made at send time, so the schedule is the same whatever fails.
func RunTargets(ctx context.Context, spec Spec, targets []string, sink func(Result), opts ...Option) (Summary, error) {
	spec = spec.withDefaults()
	if err := joinErrs("validate load spec", spec.Validate()); err != nil {
		return Summary{}, err
	}
	bases, err := parseTargets(targets)
	if err != nil {
		return Summary{}, err
	}
	var cfg runConfig
	for _, o := range opts {
		o(&cfg)
	}

	sc := newScheduler(spec)
	transport := newTransport(ctx, spec)
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: spec.Timeout}
	atk := vegeta.NewAttacker(
		vegeta.Client(client),
		vegeta.Workers(uint64(min(spec.MaxWorkers, vegeta.DefaultWorkers))),
		vegeta.MaxWorkers(uint64(spec.MaxWorkers)),
		vegeta.MaxBody(spec.MaxBody),
	)
	probeCtx, endProbes := context.WithCancel(ctx)
	fo := newFailover(probeCtx, bases, cfg, spec.Timeout, client)
	defer fo.wait()
	defer endProbes()
	tg := &targeter{ctx: ctx, sc: sc, targets: bases, fo: fo, inflight: map[uint64]inflight{}}
	transport.observe = tg.observe

	agg := newAggregator(sc.pacer)
	began := time.Now()
	var offset time.Duration
	if !cfg.epoch.IsZero() {
		offset = began.Sub(cfg.epoch)
	}
	var cancelledAt time.Duration
	stopped := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		cancelledAt = time.Since(began)
		close(stopped)
		atk.Stop()
	})
	results := atk.Attack(vegeta.Targeter(tg.target), sc.pacer, sc.pacer.Duration()+grace, "faultline")
	for vr := range results {
		seq, ok := seqOf(vr.URL)
		if !ok {
			continue // the targeter refused to plan: the load is stopping
		}
		fl, ok := tg.take(seq)
		if !ok {
			continue
		}
		r := toResult(vr, fl.plan, began, offset)
		// The transport aborts what is in flight when ctx ends; such a request was cut by
		// the stop, not failed by the system.
		r.Cut = r.Status == 0 && ctx.Err() != nil && ErrorClass(r.Error) == "canceled"
		if fl.target >= 0 {
			r.Target = bases[fl.target].base
		}
		fl.journey.Observe(&fl.plan, &r, vr.Body, sc.state)
		agg.add(&r, vr.Timestamp.Sub(began))
		if sink != nil {
			sink(r)
		}
	}
	cancelled := !stop() // AfterFunc ran: the context ended the load
	active := sc.pacer.Duration()
	agg.s.Due = sc.pacer.Planned()
	if cancelled {
		<-stopped
	}
	if cancelled && cancelledAt < active {
		active = cancelledAt
		agg.s.Due = sc.pacer.DueBy(cancelledAt)
	} else {
		cancelled = false
	}
	sum := agg.summary(active)
	sum.Began, sum.Cancelled = began, cancelled
	return sum, tg.err()
}

type inflight struct {
	plan    Plan
	journey Journey
	target  int // index into the run's targets; -1 for a plan with an absolute URL
}

// targeter hands vegeta the next planned request. Vegeta calls it from its workers, at
// send time; the lock keeps planning in sequence order.
type targeter struct {
	ctx     context.Context
	sc      *scheduler
	targets []target
	fo      *failover

	mu       sync.Mutex
	planErr  error
	inflight map[uint64]inflight // at most MaxWorkers entries
}

func (t *targeter) target(tgt *vegeta.Target) error {
	if t.ctx.Err() != nil {
		return errStopped
	}
	t.mu.Lock()
	if t.planErr != nil {
		t.mu.Unlock()
		return errStopped
	}
	p, j, err := t.sc.next()
	if err != nil {
		t.planErr = err
		t.mu.Unlock()
		return err
	}
	t.mu.Unlock()
	if err := j.Resolve(&p, t.sc.state); err != nil {
		t.mu.Lock()
		t.planErr = fmt.Errorf("resolve request %d (%s): %w", p.Seq, p.Journey, err)
		t.mu.Unlock()
		return err
	}
	u, gw := t.resolveURL(p.Path, p.Client)
	t.mu.Lock()
	t.inflight[p.Seq] = inflight{plan: p, journey: j, target: gw}
	t.mu.Unlock()

	seq := strconv.FormatUint(p.Seq, 10)
	tgt.Method = p.Method
	tgt.URL = u + fragment + seq
	tgt.Body = p.Body
	tgt.Header = p.Header.Clone()
	if tgt.Header == nil {
		tgt.Header = http.Header{}
	}
	tgt.Header.Set(HeaderSeq, seq)
	return nil
}

func (t *targeter) take(seq uint64) (inflight, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fl, ok := t.inflight[seq]
	delete(t.inflight, seq)
	return fl, ok
}

func (t *targeter) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.planErr
}

// observe hears from the transport how a request fared (before vegeta reads the body) and
// tells the failover which client's target answered or could not be reached.
func (t *targeter) observe(req *http.Request, sent time.Time, failed bool) {
	seq, err := strconv.ParseUint(req.Header.Get(HeaderSeq), 10, 64)
	if err != nil {
		return // a probe, which reports itself
	}
	t.mu.Lock()
	fl, ok := t.inflight[seq]
	t.mu.Unlock()
	if !ok || fl.target < 0 || req.URL.Host != t.targets[fl.target].url.Host {
		return // an absolute URL or a redirect elsewhere: says nothing about the target
	}
	if failed {
		t.fo.failed(fl.plan.Client, fl.target)
		return
	}
	t.fo.answered(fl.plan.Client, fl.target, sent)
}

// resolveURL joins a plan's path with the target the client sends to now and returns its
// index; absolute URLs are kept (index -1), and any fragment is dropped because the
// generator's own marks the request.
func (t *targeter) resolveURL(path string, client int) (string, int) {
	path, _, _ = strings.Cut(path, "#")
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path, -1
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	i := t.fo.pick(client)
	return t.targets[i].base + path, i
}

func seqOf(u string) (uint64, bool) {
	i := strings.LastIndex(u, fragment)
	if i < 0 {
		return 0, false
	}
	seq, err := strconv.ParseUint(u[i+len(fragment):], 10, 64)
	return seq, err == nil
}

func toResult(vr *vegeta.Result, p Plan, began time.Time, offset time.Duration) Result {
	r := Result{
		Seq: p.Seq, Journey: p.Journey, Performed: p.Performed, Client: p.Client,
		Method: p.Method, Path: p.Path,
		Planned: p.At + offset, Start: vr.Timestamp.Sub(began) + offset, Latency: vr.Latency,
		Status: int(vr.Code), Key: p.Key,
		Attrs: p.Attrs, Ref: p.Ref,
		BytesOut: vr.BytesOut, BytesIn: vr.BytesIn,
	}
	if r.Status == 0 {
		r.Error = cleanError(vr.Error, p.Seq)
		if r.Error == "" {
			r.Error = "no response"
		}
	}
	if h := vr.Headers; h != nil {
		r.ServedBy = h.Get(HeaderServedBy)
		r.Fallback = h.Get(HeaderFallback)
		r.Replayed = strings.EqualFold(h.Get(HeaderReplayed), "true")
	}
	return r
}

// cleanError drops the `Method "url": ` prefix net/http puts on transport errors (the path
// is in the result already) so that errors of one kind aggregate under one message.
func cleanError(msg string, seq uint64) string {
	msg = strings.ReplaceAll(msg, fragment+strconv.FormatUint(seq, 10), "")
	if i := strings.Index(msg, "\": "); i >= 0 && strings.Contains(msg[:i], " \"") {
		msg = msg[i+3:]
	}
	return msg
}

func parseTargets(targets []string) ([]target, error) {
	if len(targets) == 0 {
		return nil, errors.New("parse target: no target")
	}
	out := make([]target, 0, len(targets))
	for _, s := range targets {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("parse target: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("parse target: %q is not an http(s) base URL", s)
		}
		u.Fragment, u.RawFragment = "", ""
		out = append(out, target{url: u, base: strings.TrimSuffix(u.String(), "/")})
	}
	return out, nil
}

// newTransport keeps connections alive (a load generator that reconnects for every request
// measures its own handshakes), never uses an environment proxy (the harness talks to the
// system directly), and aborts requests in flight when ctx ends.
func newTransport(ctx context.Context, spec Spec) *cancelTransport {
	dialer := &net.Dialer{Timeout: spec.Timeout, KeepAlive: 30 * time.Second}
	return &cancelTransport{ctx: ctx, Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		MaxIdleConns:        spec.MaxWorkers,
		MaxIdleConnsPerHost: spec.MaxWorkers,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
}

// cancelTransport ties every request to the run's context: vegeta builds requests without
// one, and a harness that is told to stop must not wait out every request's timeout. It
// also tells observe whether the target answered or could not be reached, which only the
// transport knows exactly (vegeta flattens errors to text).
type cancelTransport struct {
	*http.Transport
	ctx     context.Context
	observe func(req *http.Request, sent time.Time, failed bool)
}

var _ http.RoundTripper = (*cancelTransport)(nil)

func (t *cancelTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(t.ctx, cancel)
	done := func() { stop(); cancel() }
	traced, gotConn := traced(req.WithContext(ctx))
	sent := time.Now()
	resp, err := t.Transport.RoundTrip(traced)
	if t.observe != nil && t.ctx.Err() == nil {
		switch {
		case err == nil:
			t.observe(req, sent, false)
		case transportFailure(err, gotConn()):
			t.observe(req, sent, true)
		}
	}
	if err != nil {
		done()
		return nil, err
	}
	resp.Body = &doneBody{ReadCloser: resp.Body, done: done}
	return resp, nil
}

type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

func joinErrs(what string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", what, errors.Join(errs...))
}
