// Package resilience turns a design.Policy into a failsafe-go policy stack for one
// caller->dependency edge, with Prometheus metrics and a gRPC client interceptor.
//
// # Order of policies (outermost first)
//
//  1. fallback: sees the final outcome of everything below, so it serves the last good
//     response only when retries, breaker and timeouts have all given up.
//  2. retry (with its budget): each retry passes through the breaker again, so an opening
//     breaker stops a retry loop at once, and the budget caps retries across all calls.
//  3. circuit breaker: records one outcome per attempt (a hedged attempt counts once) and
//     rejects without calling while open.
//  4. rate limiter and 5. bulkhead: only attempts the breaker admitted consume a permit
//     or a slot; a rejected attempt never waits for one.
//  6. timeout: bounds one attempt including its hedges, so a retry gets a fresh timeout.
//  7. hedge: innermost, it races copies of the same attempt; the first good answer wins.
//
// The stale-cache fallback is implemented by the interceptor (it needs the request as the
// cache key) rather than failsafe's fallback policy; it still runs outermost.
//
// # Failures
//
// A call fails for the retry and the breaker when gRPC says Unavailable, DeadlineExceeded,
// ResourceExhausted, Aborted, Internal or Unknown, when an attempt timed out, or when a
// non-gRPC function (the broker publish) returned an error other than a cancellation.
// InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, Unauthenticated and the
// rest are answers, not failures: the dependency is healthy and retrying cannot help.
// Breaker, bulkhead, rate limiter and budget rejections are never retried; a full bulkhead
// or rate limiter does count as a failure for the breaker, because calls piling up is how a
// slow dependency shows.
package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/hedgepolicy"
	"github.com/failsafe-go/failsafe-go/ratelimiter"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-dev/faultline/reference-services/design"
)

// Option configures an Edge.
type Option func(*options)

type options struct {
	log          *slog.Logger
	staleEntries int
}

// WithLogger logs breaker transitions, which are rare and worth a line each.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithStaleCacheEntries bounds the stale-cache fallback (default 4096 responses), so that a
// client requesting many distinct ids cannot grow the gateway without limit.
func WithStaleCacheEntries(n int) Option { return func(o *options) { o.staleEntries = n } }

// Edge is the policy stack of one caller->dependency edge. It is safe for concurrent use.
type Edge struct {
	caller, dependency string
	policy             design.Policy
	policies           []failsafe.Policy[any]
	breaker            circuitbreaker.CircuitBreaker[any]
	m                  *edgeMetrics
	stale              *staleCache // nil unless the fallback is stale-cache
	log                *slog.Logger
}

// NewEdge builds the stack for p. reg may be shared by many edges; nil means no metrics
// registration (the metrics are still counted).
func NewEdge(caller, dependency string, p design.Policy, reg prometheus.Registerer, opts ...Option) (*Edge, error) {
	o := options{log: slog.New(slog.DiscardHandler), staleEntries: 4096}
	for _, opt := range opts {
		opt(&o)
	}
	edge := design.EdgeKey(caller, dependency)
	if errs := p.Check(edge); len(errs) > 0 {
		return nil, fmt.Errorf("build edge %s: %w", edge, errors.Join(errs...))
	}
	v, err := newVectors(reg)
	if err != nil {
		return nil, fmt.Errorf("register edge metrics: %w", err)
	}
	e := &Edge{
		caller: caller, dependency: dependency, policy: p,
		m:   v.forEdge(caller, dependency, p.Breaker != nil),
		log: o.log.With("caller", caller, "dependency", dependency),
	}
	if p.Fallback == design.FallbackStaleCache {
		e.stale = newStaleCache(max(o.staleEntries, 1))
	}
	e.build()
	return e, nil
}

func (e *Edge) inc(event string) { e.m.events[event].Inc() }

func (e *Edge) build() {
	p := e.policy
	if r := p.Retry; r != nil {
		b := retrypolicy.NewBuilder[any]().
			HandleIf(func(_ any, err error) bool { return IsRetryable(err) }).
			ReturnLastFailure().
			WithMaxAttempts(r.MaxAttempts).
			OnRetry(func(failsafe.ExecutionEvent[any]) { e.inc(EventRetry) })
		switch {
		case r.Backoff > 0 && r.MaxBackoff > r.Backoff:
			b = b.WithBackoff(r.Backoff.Std(), r.MaxBackoff.Std())
		case r.Backoff > 0:
			b = b.WithDelay(r.Backoff.Std())
		}
		if r.Jitter > 0 {
			b = b.WithJitterFactor(r.Jitter)
		}
		if bg := r.Budget; bg != nil {
			b = b.WithBudget(budget.NewBuilder().
				WithMaxRate(bg.MaxRatio).
				WithMinConcurrency(uint(bg.MinConcurrency)).
				OnBudgetExceeded(func(budget.ExceededEvent) { e.inc(EventBudgetExceeded) }).
				Build())
		}
		e.policies = append(e.policies, b.Build())
	}
	if br := p.Breaker; br != nil {
		b := circuitbreaker.NewBuilder[any]().
			HandleIf(func(_ any, err error) bool { return IsFailure(err) }).
			WithDelay(br.Delay.Std()).
			OnStateChanged(func(ev circuitbreaker.StateChangedEvent) {
				e.m.breaker.Set(stateValue(ev.NewState))
				e.log.Info("breaker state changed", "from", ev.OldState.String(), "to", ev.NewState.String())
			})
		if br.Window > 0 {
			b = b.WithFailureRateThreshold(br.FailureRatio, uint(br.MinRequests), br.Window.Std())
		} else {
			threshold := uint(math.Ceil(br.FailureRatio * float64(br.MinRequests)))
			b = b.WithFailureThresholdRatio(max(threshold, 1), uint(br.MinRequests))
		}
		if br.SuccessThreshold > 0 {
			b = b.WithSuccessThreshold(uint(br.SuccessThreshold))
		}
		e.breaker = b.Build()
		e.policies = append(e.policies, e.breaker)
	}
	if rl := p.RateLimit; rl != nil {
		var b ratelimiter.Builder[any]
		if rl.Burst > 0 {
			period := time.Duration(float64(rl.Burst) / rl.RPS * float64(time.Second))
			b = ratelimiter.NewBurstyBuilder[any](uint(rl.Burst), max(period, time.Millisecond))
		} else {
			b = ratelimiter.NewSmoothBuilderWithMaxRate[any](max(time.Duration(float64(time.Second)/rl.RPS), time.Microsecond))
		}
		e.policies = append(e.policies, b.WithMaxWaitTime(rl.MaxWait.Std()).
			OnRateLimitExceeded(func(failsafe.ExecutionEvent[any]) { e.inc(EventRateLimited) }).Build())
	}
	if bh := p.Bulkhead; bh != nil {
		e.policies = append(e.policies, bulkhead.NewBuilder[any](uint(bh.MaxConcurrent)).
			WithMaxWaitTime(bh.MaxWait.Std()).
			OnFull(func(failsafe.ExecutionEvent[any]) { e.inc(EventBulkheadFull) }).Build())
	}
	if p.Timeout > 0 {
		e.policies = append(e.policies, timeout.NewBuilder[any](p.Timeout.Std()).
			OnTimeoutExceeded(func(failsafe.ExecutionDoneEvent[any]) { e.inc(EventTimeout) }).Build())
	}
	if h := p.Hedge; h != nil {
		e.policies = append(e.policies, hedgepolicy.NewBuilderWithDelay[any](h.Delay.Std()).
			WithMaxHedges(max(h.MaxHedges, 1)).
			// A failed copy must not cancel a copy that may still succeed.
			CancelIf(func(_ any, err error) bool { return !IsFailure(err) }).
			OnHedge(func(failsafe.ExecutionEvent[any]) { e.inc(EventHedge) }).Build())
	}
}

func stateValue(s circuitbreaker.State) float64 {
	switch s {
	case circuitbreaker.HalfOpenState:
		return 1
	case circuitbreaker.OpenState:
		return 2
	default:
		return 0
	}
}

// Caller is the calling service of the edge.
func (e *Edge) Caller() string { return e.caller }

// Dependency is the called service of the edge.
func (e *Edge) Dependency() string { return e.dependency }

// Policy is the policy the edge was built from.
func (e *Edge) Policy() design.Policy { return e.policy }

// BreakerState is "closed", "half-open", "open", or "none" when the edge has no breaker.
func (e *Edge) BreakerState() string {
	if e.breaker == nil {
		return "none"
	}
	return e.breaker.State().String()
}

// RecordFallback counts a fallback the caller served itself (the gateway's partial order
// page), so that every fallback of the edge shows in one metric.
func (e *Edge) RecordFallback() { e.inc(EventFallback) }

// execute runs fn through the stack and counts the outcome. The returned error is
// translated by policyError so that gRPC callers can read a status code from it.
func (e *Edge) execute(ctx context.Context, fn func(ctx context.Context) (any, error)) (any, error) {
	var res any
	var err error
	if len(e.policies) == 0 {
		res, err = fn(ctx)
	} else {
		res, err = failsafe.With(e.policies...).WithContext(ctx).GetWithExecution(func(exec failsafe.Execution[any]) (any, error) {
			return fn(exec.Context())
		})
	}
	if err != nil {
		e.m.err.Inc()
		if errors.Is(err, circuitbreaker.ErrOpen) {
			e.inc(EventBreakerRejected)
		}
		return nil, policyError(err)
	}
	e.m.ok.Inc()
	return res, nil
}

// Do runs fn (a call that is not gRPC, such as a broker publish) through the edge.
func Do(ctx context.Context, e *Edge, fn func(ctx context.Context) error) error {
	_, err := e.execute(ctx, func(ctx context.Context) (any, error) { return nil, fn(ctx) })
	return err
}

// Get runs fn through the edge and returns its result. With hedging, fn may run
// concurrently with itself, so it must not share mutable state between calls.
func Get[R any](ctx context.Context, e *Edge, fn func(ctx context.Context) (R, error)) (R, error) {
	res, err := e.execute(ctx, func(ctx context.Context) (any, error) { return fn(ctx) })
	if err != nil {
		var zero R
		return zero, err
	}
	r, _ := res.(R)
	return r, nil
}

// UnaryClientInterceptor applies the edge to every unary call on a connection. Every
// attempt decodes into its own reply message, so hedged copies and abandoned attempts
// never write into the caller's reply; the winner is copied over at the end.
func (e *Edge) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		out, ok := reply.(proto.Message)
		if !ok {
			_, err := e.execute(ctx, func(ctx context.Context) (any, error) {
				return nil, invoker(ctx, method, req, reply, cc, opts...)
			})
			return err
		}
		res, err := e.execute(ctx, func(ctx context.Context) (any, error) {
			fresh := out.ProtoReflect().New().Interface()
			if err := invoker(ctx, method, req, fresh, cc, opts...); err != nil {
				return nil, err
			}
			return fresh, nil
		})
		key := ""
		if e.stale != nil {
			key = cacheKey(method, req)
		}
		if err == nil {
			got := res.(proto.Message)
			proto.Reset(out)
			proto.Merge(out, got)
			if key != "" {
				e.stale.put(key, got)
			}
			return nil
		}
		if key != "" && IsFailure(err) && ctx.Err() == nil {
			if cached := e.stale.get(key); cached != nil {
				proto.Reset(out)
				proto.Merge(out, cached)
				e.inc(EventFallback)
				markFallback(ctx, design.FallbackStaleCache)
				e.log.Debug("served stale response", "method", method, "err", err)
				return nil
			}
		}
		return err
	}
}

// IsFailure reports whether err means the dependency failed (see the package doc).
func IsFailure(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, timeout.ErrExceeded) || errors.Is(err, circuitbreaker.ErrOpen) ||
		errors.Is(err, bulkhead.ErrFull) || errors.Is(err, ratelimiter.ErrExceeded) || errors.Is(err, budget.ErrExceeded) {
		return true
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown:
			return true
		}
		return false
	}
	return !errors.Is(err, context.Canceled)
}

// IsRetryable reports whether a failed attempt is worth another one: a dependency failure,
// but not a rejection by one of the caller's own policies.
func IsRetryable(err error) bool {
	if errors.Is(err, circuitbreaker.ErrOpen) || errors.Is(err, bulkhead.ErrFull) ||
		errors.Is(err, ratelimiter.ErrExceeded) || errors.Is(err, budget.ErrExceeded) {
		return false
	}
	return IsFailure(err)
}

// PolicyError is a rejection or timeout by one of the edge's own policies. It carries a
// gRPC code (status.Code works on it) and unwraps to failsafe's sentinel error.
type PolicyError struct {
	Code codes.Code
	Err  error
}

// Error is the sentinel's text; callers map the code, not the text.
func (e *PolicyError) Error() string { return e.Err.Error() }

// Unwrap lets errors.Is(err, circuitbreaker.ErrOpen) and friends work.
func (e *PolicyError) Unwrap() error { return e.Err }

// GRPCStatus makes the error a gRPC status for status.Code and status.FromError.
func (e *PolicyError) GRPCStatus() *status.Status { return status.New(e.Code, e.Err.Error()) }

var _ interface{ GRPCStatus() *status.Status } = (*PolicyError)(nil)

func policyError(err error) error {
	for _, m := range []struct {
		sentinel error
		code     codes.Code
	}{
		{circuitbreaker.ErrOpen, codes.Unavailable},
		{bulkhead.ErrFull, codes.Unavailable},
		{budget.ErrExceeded, codes.Unavailable},
		{ratelimiter.ErrExceeded, codes.ResourceExhausted},
		{timeout.ErrExceeded, codes.DeadlineExceeded},
	} {
		if errors.Is(err, m.sentinel) {
			return &PolicyError{Code: m.code, Err: m.sentinel}
		}
	}
	return err
}

// staleCache keeps the last good response per request for the stale-cache fallback.
type staleCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]proto.Message
}

func newStaleCache(n int) *staleCache {
	return &staleCache{max: n, entries: map[string]proto.Message{}}
}

func (c *staleCache) put(key string, m proto.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k := range c.entries { // evict an arbitrary entry: bounded, and cheap
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = m // m is a fresh message owned by the cache from here on
}

func (c *staleCache) get(key string) proto.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[key]
}

func cacheKey(method string, req any) string {
	m, ok := req.(proto.Message)
	if !ok {
		return ""
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return ""
	}
	return method + "\x00" + string(b)
}

type fallbackKey struct{}

// FallbackNote tells a caller which fallback, if any, answered its calls.
type FallbackNote struct{ served atomic.Pointer[string] }

// Served is the fallback that answered ("stale-cache"), or "".
func (n *FallbackNote) Served() string {
	if s := n.served.Load(); s != nil {
		return *s
	}
	return ""
}

// TrackFallback returns a context whose calls record on the note when a fallback answered
// them instead of the dependency, so the gateway can say so in a response header.
func TrackFallback(ctx context.Context) (context.Context, *FallbackNote) {
	n := &FallbackNote{}
	return context.WithValue(ctx, fallbackKey{}, n), n
}

func markFallback(ctx context.Context, kind string) {
	if n, ok := ctx.Value(fallbackKey{}).(*FallbackNote); ok {
		n.served.Store(&kind)
	}
}
