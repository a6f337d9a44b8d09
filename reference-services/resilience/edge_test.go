package resilience_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/timeout"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/api/refv1/mocks"
	"github.com/faultline-dev/faultline/reference-services/design"
	"github.com/faultline-dev/faultline/reference-services/resilience"
)

const getProduct = "/faultline.ref.v1.ProductService/GetProduct"

func dur(d time.Duration) design.Duration { return design.Duration(d) }

// metric reads one sample from reg; absent means -1 so that "not exported" is checkable.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

func event(t *testing.T, reg *prometheus.Registry, ev string) float64 {
	return metric(t, reg, "faultline_policy_events_total", map[string]string{"caller": "gateway", "dependency": "product", "event": ev})
}

func calls(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	return metric(t, reg, "faultline_dependency_calls_total", map[string]string{"caller": "gateway", "dependency": "product", "outcome": outcome})
}

func newEdge(t *testing.T, p design.Policy) (*resilience.Edge, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := resilience.NewEdge("gateway", "product", p, reg)
	require.NoError(t, err)
	return e, reg
}

func get(ctx context.Context, e *resilience.Edge, m *mocks.ProductServiceClient) (*refv1.Product, error) {
	return resilience.Get(ctx, e, func(ctx context.Context) (*refv1.Product, error) {
		return m.GetProduct(ctx, &refv1.GetProductRequest{Id: "p-001"})
	})
}

func TestRetryOnlyRetryableCodes(t *testing.T) {
	tests := []struct {
		code  codes.Code
		calls int
	}{
		{codes.Unavailable, 3},
		{codes.DeadlineExceeded, 3},
		{codes.ResourceExhausted, 3},
		{codes.Aborted, 3},
		{codes.Internal, 3},
		{codes.Unknown, 3},
		{codes.InvalidArgument, 1},
		{codes.NotFound, 1},
		{codes.AlreadyExists, 1},
		{codes.FailedPrecondition, 1},
		{codes.Unauthenticated, 1},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			e, reg := newEdge(t, design.Policy{Retry: &design.Retry{MaxAttempts: 3, Backoff: dur(time.Millisecond)}})
			m := mocks.NewProductServiceClient(t)
			m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(nil, status.Error(tt.code, "boom")).Times(tt.calls)
			_, err := get(context.Background(), e, m)
			assert.Equal(t, tt.code, status.Code(err), "the last failure is returned, not a wrapper")
			assert.Equal(t, float64(tt.calls-1), event(t, reg, resilience.EventRetry))
			assert.Equal(t, float64(1), calls(t, reg, "error"))
		})
	}
}

func TestRetrySucceedsAfterTransientFailure(t *testing.T) {
	e, reg := newEdge(t, design.Policy{Retry: &design.Retry{MaxAttempts: 3}})
	m := mocks.NewProductServiceClient(t)
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(nil, status.Error(codes.Unavailable, "x")).Once()
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(&refv1.Product{Id: "p-001"}, nil).Once()
	got, err := get(context.Background(), e, m)
	require.NoError(t, err)
	assert.Equal(t, "p-001", got.GetId())
	assert.Equal(t, float64(1), calls(t, reg, "ok"))
	assert.Equal(t, float64(0), calls(t, reg, "error"))
}

func TestBudgetStopsRetriesAboveTheRatio(t *testing.T) {
	const n = 10
	var mu sync.Mutex
	var rejected []error
	run := func(b *design.Budget) (attempts int64, reg *prometheus.Registry) {
		e, reg := newEdge(t, design.Policy{Retry: &design.Retry{MaxAttempts: 3, Budget: b}})
		m := mocks.NewProductServiceClient(t)
		release := make(chan struct{})
		var firsts, total atomic.Int64
		m.EXPECT().GetProduct(mock.Anything, mock.Anything).RunAndReturn(func(ctx context.Context, _ *refv1.GetProductRequest, _ ...grpc.CallOption) (*refv1.Product, error) {
			total.Add(1)
			id := ctx.Value(callKey{}).(*int)
			if *id == 0 {
				*id = 1
				firsts.Add(1)
				return nil, status.Error(codes.Unavailable, "down")
			}
			// Retries stay in flight until every call has failed once, so they overlap.
			<-release
			return nil, status.Error(codes.Unavailable, "down")
		})
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				attempt := 0
				ctx := context.WithValue(context.Background(), callKey{}, &attempt)
				_, err := get(ctx, e, m)
				assert.Error(t, err)
				if errors.Is(err, budget.ErrExceeded) {
					mu.Lock()
					rejected = append(rejected, err)
					mu.Unlock()
				}
			})
		}
		require.Eventually(t, func() bool { return firsts.Load() == n }, 10*time.Second, time.Millisecond)
		close(release)
		wg.Wait()
		return total.Load(), reg
	}

	unbounded, _ := run(nil)
	assert.Equal(t, int64(n*3), unbounded, "without a budget every call makes every attempt")

	bounded, reg := run(&design.Budget{MaxRatio: 0.1})
	assert.Less(t, bounded, int64(n*3))
	assert.Positive(t, event(t, reg, resilience.EventBudgetExceeded))
	assert.Equal(t, float64(bounded-n), event(t, reg, resilience.EventRetry), "every attempt beyond the first is a counted retry")
	require.NotEmpty(t, rejected)
	assert.Equal(t, codes.Unavailable, status.Code(rejected[0]), "a budget rejection is a 503 at the gateway, not a 502")
}

type callKey struct{}

func TestBreakerOpensRejectsAndHalfOpens(t *testing.T) {
	e, reg := newEdge(t, design.Policy{Breaker: &design.Breaker{
		// The delay must outlast a stall of the test goroutine on a loaded machine: the open
		// breaker is asserted to reject the fourth call, which a probe would not.
		FailureRatio: 1, MinRequests: 3, Delay: dur(2 * time.Second), SuccessThreshold: 1,
	}})
	state := func() float64 {
		return metric(t, reg, "faultline_breaker_state", map[string]string{"caller": "gateway", "dependency": "product"})
	}
	assert.Equal(t, "closed", e.BreakerState())
	assert.Equal(t, float64(0), state())

	m := mocks.NewProductServiceClient(t)
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(nil, status.Error(codes.Unavailable, "down")).Times(3)
	for range 3 {
		_, err := get(context.Background(), e, m)
		require.Equal(t, codes.Unavailable, status.Code(err))
	}
	assert.Equal(t, "open", e.BreakerState())
	assert.Equal(t, float64(2), state())

	// Open: rejected without calling (the mock allows no fourth call).
	_, err := get(context.Background(), e, m)
	require.ErrorIs(t, err, circuitbreaker.ErrOpen)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, float64(1), event(t, reg, resilience.EventBreakerRejected))
	m.AssertNumberOfCalls(t, "GetProduct", 3)

	// After the delay a probe goes through, succeeds, and closes the breaker.
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(&refv1.Product{Id: "p-001"}, nil)
	require.Eventually(t, func() bool {
		_, err := get(context.Background(), e, m)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, "closed", e.BreakerState())
	assert.Equal(t, float64(0), state())
}

func TestBreakerIgnoresAnswers(t *testing.T) {
	e, _ := newEdge(t, design.Policy{Breaker: &design.Breaker{FailureRatio: 1, MinRequests: 2, Delay: dur(time.Minute)}})
	m := mocks.NewProductServiceClient(t)
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(nil, status.Error(codes.NotFound, "no such product")).Times(5)
	for range 5 {
		_, err := get(context.Background(), e, m)
		require.Equal(t, codes.NotFound, status.Code(err))
	}
	assert.Equal(t, "closed", e.BreakerState(), "NotFound is an answer from a healthy dependency")
}

func TestBreakerHalfOpenFailureReopens(t *testing.T) {
	e, _ := newEdge(t, design.Policy{Breaker: &design.Breaker{FailureRatio: 1, MinRequests: 1, Delay: dur(50 * time.Millisecond)}})
	m := mocks.NewProductServiceClient(t)
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(nil, status.Error(codes.Unavailable, "down"))
	_, _ = get(context.Background(), e, m)
	require.Equal(t, "open", e.BreakerState())
	require.Eventually(t, func() bool {
		_, err := get(context.Background(), e, m)
		return !errors.Is(err, circuitbreaker.ErrOpen)
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, "open", e.BreakerState(), "a failed probe opens the breaker again")
}

func TestTimeoutCancelsTheCall(t *testing.T) {
	e, reg := newEdge(t, design.Policy{Timeout: dur(50 * time.Millisecond)})
	m := mocks.NewProductServiceClient(t)
	cancelled := make(chan struct{})
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).RunAndReturn(func(ctx context.Context, _ *refv1.GetProductRequest, _ ...grpc.CallOption) (*refv1.Product, error) {
		select {
		case <-ctx.Done():
			close(cancelled)
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-time.After(time.Minute):
			return &refv1.Product{}, nil
		}
	}).Once()
	_, err := get(context.Background(), e, m)
	require.ErrorIs(t, err, timeout.ErrExceeded)
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
	select {
	case <-cancelled:
	default:
		t.Fatal("the dependency's context was not cancelled")
	}
	assert.Equal(t, float64(1), event(t, reg, resilience.EventTimeout))
}

func TestRetriedTimeoutsGetAFreshTimeoutEach(t *testing.T) {
	e, reg := newEdge(t, design.Policy{Timeout: dur(30 * time.Millisecond), Retry: &design.Retry{MaxAttempts: 2}})
	m := mocks.NewProductServiceClient(t)
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).RunAndReturn(func(ctx context.Context, _ *refv1.GetProductRequest, _ ...grpc.CallOption) (*refv1.Product, error) {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}).Once()
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(&refv1.Product{Id: "p-001"}, nil).Once()
	_, err := get(context.Background(), e, m)
	require.NoError(t, err)
	assert.Equal(t, float64(1), event(t, reg, resilience.EventTimeout))
	assert.Equal(t, float64(1), event(t, reg, resilience.EventRetry))
}

func TestBulkheadRejectsBeyondCapacity(t *testing.T) {
	e, reg := newEdge(t, design.Policy{Bulkhead: &design.Bulkhead{MaxConcurrent: 1}})
	m := mocks.NewProductServiceClient(t)
	entered, release := make(chan struct{}), make(chan struct{})
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).RunAndReturn(func(context.Context, *refv1.GetProductRequest, ...grpc.CallOption) (*refv1.Product, error) {
		close(entered)
		<-release
		return &refv1.Product{}, nil
	}).Once()
	done := make(chan error, 1)
	go func() { _, err := get(context.Background(), e, m); done <- err }()
	<-entered
	_, err := get(context.Background(), e, m)
	require.ErrorIs(t, err, bulkhead.ErrFull)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, float64(1), event(t, reg, resilience.EventBulkheadFull))
	close(release)
	require.NoError(t, <-done)
}

func TestRateLimiterRejects(t *testing.T) {
	// One permit per 1000 s: the second call cannot land in a fresh period however slow the
	// machine is.
	e, reg := newEdge(t, design.Policy{RateLimit: &design.RateLimit{RPS: 0.001, Burst: 1}})
	m := mocks.NewProductServiceClient(t)
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(&refv1.Product{}, nil).Once()
	_, err := get(context.Background(), e, m)
	require.NoError(t, err)
	_, err = get(context.Background(), e, m)
	assert.Equal(t, codes.ResourceExhausted, status.Code(err))
	assert.Equal(t, float64(1), event(t, reg, resilience.EventRateLimited))
}

func TestHedgeSendsASecondCallAfterTheDelay(t *testing.T) {
	e, reg := newEdge(t, design.Policy{Hedge: &design.Hedge{Delay: dur(20 * time.Millisecond), MaxHedges: 1}})
	m := mocks.NewProductServiceClient(t)
	var n atomic.Int32
	slowCancelled := make(chan struct{})
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).RunAndReturn(func(ctx context.Context, _ *refv1.GetProductRequest, _ ...grpc.CallOption) (*refv1.Product, error) {
		if n.Add(1) == 1 { // the first copy is stuck
			<-ctx.Done()
			close(slowCancelled)
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return &refv1.Product{Id: "hedged"}, nil
	}).Times(2)
	got, err := get(context.Background(), e, m)
	require.NoError(t, err)
	assert.Equal(t, "hedged", got.GetId())
	assert.Equal(t, float64(1), event(t, reg, resilience.EventHedge))
	select {
	case <-slowCancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the losing copy was not cancelled")
	}
}

func TestHedgeNotSentWhenFast(t *testing.T) {
	e, reg := newEdge(t, design.Policy{Hedge: &design.Hedge{Delay: dur(5 * time.Second)}})
	m := mocks.NewProductServiceClient(t)
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(&refv1.Product{}, nil).Once()
	_, err := get(context.Background(), e, m)
	require.NoError(t, err)
	assert.Equal(t, float64(0), event(t, reg, resilience.EventHedge))
}

// invoker adapts a mock client to a grpc.UnaryInvoker, the way a connection would.
func invoker(m *mocks.ProductServiceClient) grpc.UnaryInvoker {
	return func(ctx context.Context, _ string, req, reply any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		p, err := m.GetProduct(ctx, req.(*refv1.GetProductRequest))
		if err != nil {
			return err
		}
		proto.Merge(reply.(proto.Message), p)
		return nil
	}
}

func TestInterceptorStaleCacheFallback(t *testing.T) {
	e, reg := newEdge(t, design.Policy{Fallback: design.FallbackStaleCache})
	ic := e.UnaryClientInterceptor()
	m := mocks.NewProductServiceClient(t)
	m.EXPECT().GetProduct(mock.Anything, &refv1.GetProductRequest{Id: "p-001"}).Return(&refv1.Product{Id: "p-001", Stock: 7}, nil).Once()
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(nil, status.Error(codes.Unavailable, "down"))

	var fresh refv1.Product
	ctx, note := resilience.TrackFallback(context.Background())
	require.NoError(t, ic(ctx, getProduct, &refv1.GetProductRequest{Id: "p-001"}, &fresh, nil, invoker(m)))
	assert.Equal(t, int64(7), fresh.GetStock())
	assert.Empty(t, note.Served())

	var stale refv1.Product
	ctx, note = resilience.TrackFallback(context.Background())
	require.NoError(t, ic(ctx, getProduct, &refv1.GetProductRequest{Id: "p-001"}, &stale, nil, invoker(m)))
	assert.Equal(t, int64(7), stale.GetStock())
	assert.Equal(t, design.FallbackStaleCache, note.Served())
	assert.Equal(t, float64(1), event(t, reg, resilience.EventFallback))
	assert.Equal(t, float64(1), calls(t, reg, "error"), "the dependency failed even though the caller was served")

	var none refv1.Product
	err := ic(context.Background(), getProduct, &refv1.GetProductRequest{Id: "p-002"}, &none, nil, invoker(m))
	assert.Equal(t, codes.Unavailable, status.Code(err), "nothing cached for another request")
}

func TestInterceptorNoStaleForAnswers(t *testing.T) {
	e, _ := newEdge(t, design.Policy{Fallback: design.FallbackStaleCache})
	ic := e.UnaryClientInterceptor()
	m := mocks.NewProductServiceClient(t)
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(&refv1.Product{Id: "p-001"}, nil).Once()
	m.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(nil, status.Error(codes.NotFound, "deleted")).Once()
	req := &refv1.GetProductRequest{Id: "p-001"}
	require.NoError(t, ic(context.Background(), getProduct, req, &refv1.Product{}, nil, invoker(m)))
	err := ic(context.Background(), getProduct, req, &refv1.Product{}, nil, invoker(m))
	assert.Equal(t, codes.NotFound, status.Code(err), "a NotFound is the truth, not an outage to paper over")
}

func TestInterceptorHedgedCopiesDoNotShareTheReply(t *testing.T) {
	e, _ := newEdge(t, design.Policy{Hedge: &design.Hedge{Delay: dur(time.Millisecond), MaxHedges: 3}})
	ic := e.UnaryClientInterceptor()
	var n atomic.Int32
	inv := func(ctx context.Context, _ string, _, reply any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		i := n.Add(1)
		p := reply.(*refv1.Product)
		p.Name = "copy"
		p.Stock = int64(i)
		if i < 4 {
			<-ctx.Done()
			p.Name = "cancelled copy wrote late"
			return status.FromContextError(ctx.Err()).Err()
		}
		return nil
	}
	var out refv1.Product
	require.NoError(t, ic(context.Background(), getProduct, &refv1.GetProductRequest{}, &out, nil, inv))
	assert.Equal(t, "copy", out.GetName())
	assert.Equal(t, int64(4), out.GetStock())
}

func TestDoCountsOutcomes(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := resilience.NewEdge("order", "broker", design.Policy{Retry: &design.Retry{MaxAttempts: 2}}, reg)
	require.NoError(t, err)
	var n int
	require.NoError(t, resilience.Do(context.Background(), e, func(context.Context) error {
		n++
		if n == 1 {
			return errors.New("publish orders.placed: nats: timeout")
		}
		return nil
	}))
	assert.Equal(t, 2, n, "a plain error is a failure worth retrying")
	err = resilience.Do(context.Background(), e, func(context.Context) error { return context.Canceled })
	require.ErrorIs(t, err, context.Canceled)
	ok := metric(t, reg, "faultline_dependency_calls_total", map[string]string{"caller": "order", "dependency": "broker", "outcome": "ok"})
	bad := metric(t, reg, "faultline_dependency_calls_total", map[string]string{"caller": "order", "dependency": "broker", "outcome": "error"})
	assert.Equal(t, []float64{1, 1}, []float64{ok, bad})
}

func TestEdgesShareARegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	withBreaker := design.Policy{Breaker: &design.Breaker{FailureRatio: 0.5, MinRequests: 4, Delay: dur(time.Second)}}
	a, err := resilience.NewEdge("gateway", "product", withBreaker, reg)
	require.NoError(t, err)
	_, err = resilience.NewEdge("gateway", "merchant", design.Policy{}, reg)
	require.NoError(t, err, "a second edge on the same registerer must not collide")
	_, err = resilience.NewEdge("order", "product", withBreaker, reg)
	require.NoError(t, err)

	assert.Equal(t, "closed", a.BreakerState())
	assert.Equal(t, float64(0), metric(t, reg, "faultline_breaker_state", map[string]string{"caller": "order", "dependency": "product"}))
	assert.Equal(t, float64(-1), metric(t, reg, "faultline_breaker_state", map[string]string{"caller": "gateway", "dependency": "merchant"}),
		"no breaker, no breaker state")
	assert.Equal(t, float64(0), metric(t, reg, "faultline_policy_events_total", map[string]string{"caller": "gateway", "dependency": "merchant", "event": "retry"}),
		"events are exported from zero")
}

func TestNoBreakerState(t *testing.T) {
	e, err := resilience.NewEdge("gateway", "product", design.Policy{}, nil)
	require.NoError(t, err)
	assert.Equal(t, "none", e.BreakerState())
	got, err := resilience.Get(context.Background(), e, func(context.Context) (int, error) { return 42, nil })
	require.NoError(t, err)
	assert.Equal(t, 42, got)
}

func TestNewEdgeRejectsBadPolicy(t *testing.T) {
	_, err := resilience.NewEdge("gateway", "product", design.Policy{Retry: &design.Retry{MaxAttempts: 0}}, nil)
	assert.ErrorContains(t, err, "retry.max_attempts: must be >= 1")
	_, err = resilience.NewEdge("gateway", "product", design.Policy{Breaker: &design.Breaker{FailureRatio: 2, MinRequests: 1, Delay: 1}}, nil)
	assert.ErrorContains(t, err, "breaker.failure_ratio", "an out-of-range ratio is an error, not a panic in failsafe-go")
}

func TestIsFailure(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		failure   bool
		retryable bool
	}{
		{"nil", nil, false, false},
		{"unavailable", status.Error(codes.Unavailable, ""), true, true},
		{"not found", status.Error(codes.NotFound, ""), false, false},
		{"permission denied", status.Error(codes.PermissionDenied, ""), false, false},
		{"cancelled", status.Error(codes.Canceled, ""), false, false},
		{"context cancelled", context.Canceled, false, false},
		{"plain error", errors.New("broken pipe"), true, true},
		{"attempt timeout", timeout.ErrExceeded, true, true},
		{"breaker open", circuitbreaker.ErrOpen, true, false},
		{"bulkhead full", bulkhead.ErrFull, true, false},
		{"budget exceeded", budget.ErrExceeded, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.failure, resilience.IsFailure(tt.err))
			assert.Equal(t, tt.retryable, resilience.IsRetryable(tt.err))
		})
	}
}
