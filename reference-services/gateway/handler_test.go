package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/api/refv1/mocks"
	"github.com/faultline-dev/faultline/reference-services/auth"
	"github.com/faultline-dev/faultline/reference-services/design"
	"github.com/faultline-dev/faultline/reference-services/gateway"
	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/resilience"
)

var secret = []byte("test-secret-test-secret-test-sec")

const (
	issuer   = "faultline"
	audience = "gateway"
)

type fixture struct {
	merchants *mocks.MerchantServiceClient
	products  *mocks.ProductServiceClient
	orders    *mocks.OrderServiceClient
	reg       *prometheus.Registry
	h         http.Handler
}

func newFixture(t *testing.T, opts ...gateway.Option) *fixture {
	t.Helper()
	f := &fixture{
		merchants: mocks.NewMerchantServiceClient(t),
		products:  mocks.NewProductServiceClient(t),
		orders:    mocks.NewOrderServiceClient(t),
		reg:       prometheus.NewRegistry(),
	}
	h, err := gateway.NewHandler(gateway.Deps{
		Merchants: f.merchants, Products: f.products, Orders: f.orders,
		Verifier: auth.NewVerifier(secret, issuer, audience),
	}, append([]gateway.Option{gateway.WithName("gateway-1"), gateway.WithRegisterer(f.reg)}, opts...)...)
	require.NoError(t, err)
	f.h = h
	return f
}

func token(t *testing.T, subject string) string {
	t.Helper()
	s, err := auth.Issue(secret, issuer, audience, subject, time.Hour)
	require.NoError(t, err)
	return s
}

func (f *fixture) do(t *testing.T, method, path, body string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token(t, "alice"))
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), rec.Body.String())
	return v
}

func TestAuthRefusals(t *testing.T) {
	sign := func(method jwt.SigningMethod, key any, mod func(c *jwt.RegisteredClaims)) string {
		now := time.Now()
		c := jwt.RegisteredClaims{Issuer: issuer, Audience: jwt.ClaimStrings{audience}, Subject: "alice",
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}
		if mod != nil {
			mod(&c)
		}
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		require.NoError(t, err)
		return s
	}
	tests := []struct {
		name   string
		header string
		want   string
	}{
		{"missing", "", "missing bearer token"},
		{"wrong scheme", "Basic YWxpY2U6cGFzcw==", "malformed token"},
		{"empty bearer", "Bearer ", "malformed token"},
		{"malformed", "Bearer abc.def", "malformed token"},
		{"expired", "Bearer " + sign(jwt.SigningMethodHS256, secret, func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
		}), "token expired"},
		{"not yet valid", "Bearer " + sign(jwt.SigningMethodHS256, secret, func(c *jwt.RegisteredClaims) {
			c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour))
		}), "token not valid yet"},
		{"wrong signature", "Bearer " + sign(jwt.SigningMethodHS256, []byte("some-other-secret-some-other-sec"), nil), "invalid token signature"},
		{"wrong issuer", "Bearer " + sign(jwt.SigningMethodHS256, secret, func(c *jwt.RegisteredClaims) { c.Issuer = "x" }), "wrong token issuer"},
		{"wrong audience", "Bearer " + sign(jwt.SigningMethodHS256, secret, func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"x"} }), "wrong token audience"},
		{"alg none", "Bearer " + sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil), "token signing method not allowed"},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(t, http.MethodGet, "/products", "", map[string]string{"Authorization": tt.header})
			assert.Equal(t, http.StatusUnauthorized, rec.Code)
			assert.Equal(t, tt.want, decode(t, rec)["error"])
			assert.NotEmpty(t, rec.Header().Get("WWW-Authenticate"))
			assert.Equal(t, "gateway-1", rec.Header().Get(gateway.HeaderServedBy))
		})
	}
	// No dependency was called for any refused request: the mocks would fail the test.
	assert.Equal(t, float64(len(tests)), mustCounter(t, f.reg, "GET /products", "401"))
}

// mustCounter finds faultline_http_requests_total{route,code}.
func mustCounter(t *testing.T, reg *prometheus.Registry, route, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "faultline_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no faultline_http_requests_total{route=%q,code=%q}", route, code)
	return 0
}

func TestPlaceOrderIdempotency(t *testing.T) {
	order := &refv1.Order{Id: "o-1", IdempotencyKey: "k-1", MerchantId: "m-01", ProductId: "p-001", Quantity: 2, Status: "placed"}
	body := `{"merchant_id":"m-01","product_id":"p-001","quantity":2}`
	tests := []struct {
		name     string
		key      string
		body     string
		replayed bool
		err      error // the order service's answer
		want     int
	}{
		{"no key", "", body, false, nil, http.StatusBadRequest},
		{"key too long", strings.Repeat("k", 129), body, false, nil, http.StatusBadRequest},
		{"first time", "k-1", body, false, nil, http.StatusCreated},
		{"repeated key", "k-1", body, true, nil, http.StatusOK},
		{"repeated key, another request", "k-1", body, false, status.Error(codes.AlreadyExists, "key k-1 used"), http.StatusUnprocessableEntity},
		{"bad json", "k-2", `{"merchant_id":`, false, nil, http.StatusBadRequest},
		{"unknown field", "k-2", `{"merchant_id":"m-01","product_id":"p-001","quantity":1,"price":0}`, false, nil, http.StatusBadRequest},
		{"zero quantity", "k-2", `{"merchant_id":"m-01","product_id":"p-001","quantity":0}`, false, nil, http.StatusBadRequest},
		{"missing ids", "k-2", `{"quantity":1}`, false, nil, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.want < 300 || tt.err != nil {
				// The key is the subject's, and the request's fingerprint goes along.
				f.orders.EXPECT().PlaceOrder(mock.Anything, &refv1.PlaceOrderRequest{
					IdempotencyKey: tt.key, MerchantId: "m-01", ProductId: "p-001", Quantity: 2,
					Owner: "alice", Fingerprint: gateway.Fingerprint(http.MethodPost, "/orders", []byte(tt.body)),
				}).Return(&refv1.PlaceOrderResponse{Order: order, Replayed: tt.replayed}, tt.err).Once()
			}
			rec := f.do(t, http.MethodPost, "/orders", tt.body, map[string]string{gateway.HeaderIdempotencyKey: tt.key})
			require.Equal(t, tt.want, rec.Code, rec.Body.String())
			if tt.want >= 300 {
				assert.NotEmpty(t, decode(t, rec)["error"])
				return
			}
			got := decode(t, rec)
			assert.Equal(t, "o-1", got["id"])
			assert.Equal(t, "/orders/o-1", rec.Header().Get("Location"))
			if tt.replayed {
				assert.Equal(t, "true", rec.Header().Get(gateway.HeaderIdempotentReplay))
			} else {
				assert.Empty(t, rec.Header().Get(gateway.HeaderIdempotentReplay))
			}
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	f := newFixture(t, gateway.WithLimits(design.GatewayLimits{MaxBodyBytes: 64}))
	big := `{"merchant_id":"` + strings.Repeat("m", 100) + `","product_id":"p","quantity":1}`
	rec := f.do(t, http.MethodPost, "/orders", big, map[string]string{gateway.HeaderIdempotencyKey: "k"})
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)

	// Without a Content-Length the limit still holds while reading.
	req := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(big))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+token(t, "alice"))
	req.Header.Set(gateway.HeaderIdempotencyKey, "k")
	rec = httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
}

func TestGRPCCodeMapping(t *testing.T) {
	tests := []struct {
		err        error
		want       int
		retryAfter bool
	}{
		{status.Error(codes.NotFound, "product p-9 not in /var/lib/db.sqlite"), http.StatusNotFound, false},
		{status.Error(codes.InvalidArgument, "sql: bad id /var/lib/db.sqlite"), http.StatusBadRequest, false},
		{status.Error(codes.Unavailable, "connection refused 127.0.0.1:4242"), http.StatusServiceUnavailable, true},
		{&resilience.PolicyError{Code: codes.Unavailable, Err: assert.AnError}, http.StatusServiceUnavailable, true},
		{status.Error(codes.DeadlineExceeded, "deadline /var/lib/db.sqlite"), http.StatusGatewayTimeout, false},
		{status.Error(codes.ResourceExhausted, "quota /var/lib/db.sqlite"), http.StatusTooManyRequests, true},
		{status.Error(codes.FailedPrecondition, "merchant inactive /var/lib/db.sqlite"), http.StatusConflict, false},
		{status.Error(codes.Internal, "panic at /var/lib/db.sqlite"), http.StatusBadGateway, false},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.want), func(t *testing.T) {
			f := newFixture(t)
			f.products.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(nil, tt.err).Once()
			rec := f.do(t, http.MethodGet, "/products/p-009", "", nil)
			assert.Equal(t, tt.want, rec.Code)
			assert.Equal(t, tt.retryAfter, rec.Header().Get("Retry-After") != "")
			assert.NotContains(t, rec.Body.String(), "/var/lib", "internal error text never leaks")
			assert.NotContains(t, rec.Body.String(), "127.0.0.1")
			body := decode(t, rec)
			assert.NotEmpty(t, body["error"])
			assert.Equal(t, rec.Header().Get(gateway.HeaderRequestID), body["request_id"])
		})
	}
}

func TestReadRoutes(t *testing.T) {
	f := newFixture(t)
	f.products.EXPECT().ListProducts(mock.Anything, mock.Anything).Return(&refv1.ListProductsResponse{Products: []*refv1.Product{{Id: "p-001", Stock: 3}}}, nil).Once()
	f.merchants.EXPECT().GetMerchant(mock.Anything, &refv1.GetMerchantRequest{Id: "m-01"}).Return(&refv1.Merchant{Id: "m-01", Active: true}, nil).Once()
	rec := f.do(t, http.MethodGet, "/products", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "p-001", decode(t, rec)["products"].([]any)[0].(map[string]any)["id"])
	rec = f.do(t, http.MethodGet, "/merchants/m-01", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, true, decode(t, rec)["active"])
	rec = f.do(t, http.MethodGet, "/healthz", "", nil)
	assert.Equal(t, http.StatusNotFound, rec.Code, "health lives on the admin port")
}

func TestOrderPageWithFailedMerchant(t *testing.T) {
	f := newFixture(t)
	f.orders.EXPECT().GetOrder(mock.Anything, &refv1.GetOrderRequest{Id: "o-1", Owner: "alice"}).
		Return(&refv1.Order{Id: "o-1", MerchantId: "m-01", ProductId: "p-001", Quantity: 1}, nil).Once()
	f.products.EXPECT().GetProduct(mock.Anything, &refv1.GetProductRequest{Id: "p-001"}).Return(&refv1.Product{Id: "p-001", Name: "Kettle"}, nil).Once()
	f.merchants.EXPECT().GetMerchant(mock.Anything, &refv1.GetMerchantRequest{Id: "m-01"}).Return(nil, status.Error(codes.Unavailable, "down")).Once()
	rec := f.do(t, http.MethodGet, "/orders/o-1", "", nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	page := decode(t, rec)
	assert.Equal(t, "o-1", page["order"].(map[string]any)["id"])
	assert.Equal(t, "Kettle", page["product"].(map[string]any)["name"])
	assert.Nil(t, page["merchant"])
	assert.Equal(t, []any{"merchant"}, page["unavailable"])
	assert.Equal(t, gateway.FallbackPartial, rec.Header().Get(gateway.HeaderFallback))
}

func TestOrderPageUnknownOrder(t *testing.T) {
	f := newFixture(t)
	f.orders.EXPECT().GetOrder(mock.Anything, mock.Anything).Return(nil, status.Error(codes.NotFound, "no")).Once()
	rec := f.do(t, http.MethodGet, "/orders/o-404", "", nil)
	assert.Equal(t, http.StatusNotFound, rec.Code, "without the order there is no page to degrade")
}

func TestOrderPageFetchesPartsConcurrently(t *testing.T) {
	f := newFixture(t)
	f.orders.EXPECT().GetOrder(mock.Anything, mock.Anything).Return(&refv1.Order{Id: "o-1", MerchantId: "m-01", ProductId: "p-001"}, nil).Once()
	var both sync.WaitGroup
	both.Add(2)
	wait := func() bool { // each part waits for the other: sequential fetching would deadlock
		both.Done()
		done := make(chan struct{})
		go func() { both.Wait(); close(done) }()
		select {
		case <-done:
			return true
		case <-time.After(10 * time.Second):
			return false
		}
	}
	f.products.EXPECT().GetProduct(mock.Anything, mock.Anything).RunAndReturn(func(context.Context, *refv1.GetProductRequest, ...grpc.CallOption) (*refv1.Product, error) {
		if !wait() {
			return nil, status.Error(codes.DeadlineExceeded, "sequential")
		}
		return &refv1.Product{Id: "p-001"}, nil
	}).Once()
	f.merchants.EXPECT().GetMerchant(mock.Anything, mock.Anything).RunAndReturn(func(context.Context, *refv1.GetMerchantRequest, ...grpc.CallOption) (*refv1.Merchant, error) {
		if !wait() {
			return nil, status.Error(codes.DeadlineExceeded, "sequential")
		}
		return &refv1.Merchant{Id: "m-01"}, nil
	}).Once()
	rec := f.do(t, http.MethodGet, "/orders/o-1", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Nil(t, decode(t, rec)["unavailable"])
}

func TestShedBeyondMaxInFlight(t *testing.T) {
	f := newFixture(t, gateway.WithLimits(design.GatewayLimits{MaxInFlight: 1}))
	entered, release := make(chan struct{}), make(chan struct{})
	f.products.EXPECT().GetProduct(mock.Anything, mock.Anything).RunAndReturn(func(context.Context, *refv1.GetProductRequest, ...grpc.CallOption) (*refv1.Product, error) {
		close(entered)
		<-release
		return &refv1.Product{Id: "p-001"}, nil
	}).Once()
	first := make(chan int, 1)
	go func() { first <- f.do(t, http.MethodGet, "/products/p-001", "", nil).Code }()
	<-entered
	rec := f.do(t, http.MethodGet, "/products/p-002", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	close(release)
	assert.Equal(t, http.StatusOK, <-first)
	assert.Equal(t, float64(1), shed(t, f.reg, gateway.ShedInFlight))
}

func shed(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "faultline_http_shed_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

func TestQueuedRequestGetsASlot(t *testing.T) {
	f := newFixture(t, gateway.WithLimits(design.GatewayLimits{MaxInFlight: 1, MaxQueueWait: design.Duration(time.Minute)}))
	var inside atomic.Int32
	entered, release := make(chan struct{}, 2), make(chan struct{})
	f.products.EXPECT().GetProduct(mock.Anything, mock.Anything).RunAndReturn(func(context.Context, *refv1.GetProductRequest, ...grpc.CallOption) (*refv1.Product, error) {
		if inside.Add(1) > 1 {
			t.Error("two requests in flight with max_in_flight 1")
		}
		defer inside.Add(-1)
		entered <- struct{}{}
		<-release
		return &refv1.Product{}, nil
	}).Times(2)
	codes := make(chan int, 2)
	for range 2 {
		go func() { codes <- f.do(t, http.MethodGet, "/products/p-001", "", nil).Code }()
	}
	<-entered
	release <- struct{}{}
	<-entered
	release <- struct{}{}
	assert.Equal(t, []int{200, 200}, []int{<-codes, <-codes})
}

func TestPerClientRateLimit(t *testing.T) {
	f := newFixture(t, gateway.WithLimits(design.GatewayLimits{ClientRPS: 0.001, ClientBurst: 1}))
	f.products.EXPECT().GetProduct(mock.Anything, mock.Anything).Return(&refv1.Product{}, nil).Twice()
	assert.Equal(t, http.StatusOK, f.do(t, http.MethodGet, "/products/p-001", "", nil).Code)
	rec := f.do(t, http.MethodGet, "/products/p-001", "", nil)
	assert.Equal(t, http.StatusTooManyRequests, rec.Code)
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	other := f.do(t, http.MethodGet, "/products/p-001", "", map[string]string{"Authorization": "Bearer " + token(t, "bob")})
	assert.Equal(t, http.StatusOK, other.Code, "the limit is per client")
	assert.Equal(t, float64(1), shed(t, f.reg, gateway.ShedRateLimit))
}

// fakeProducts is a real gRPC ProductService whose failure can be switched on.
type fakeProducts struct {
	refv1.UnimplementedProductServiceServer
	failing atomic.Bool
}

func (p *fakeProducts) GetProduct(_ context.Context, r *refv1.GetProductRequest) (*refv1.Product, error) {
	if p.failing.Load() {
		return nil, status.Error(codes.Unavailable, "product is down")
	}
	return &refv1.Product{Id: r.GetId(), Name: "Kettle", Stock: 5}, nil
}

func (p *fakeProducts) ListProducts(context.Context, *refv1.ListProductsRequest) (*refv1.ListProductsResponse, error) {
	if p.failing.Load() {
		return nil, status.Error(codes.Unavailable, "product is down")
	}
	return &refv1.ListProductsResponse{Products: []*refv1.Product{{Id: "p-001"}}}, nil
}

func TestStaleCacheWhenProductFails(t *testing.T) {
	ln, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	fake := &fakeProducts{}
	refv1.RegisterProductServiceServer(srv, fake)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	reg := prometheus.NewRegistry()
	edge, err := resilience.NewEdge("gateway", "product", design.Default().Policy("gateway", "product"), reg)
	require.NoError(t, err)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(edge.UnaryClientInterceptor()))
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, err)
	h, err := gateway.NewHandler(gateway.Deps{
		Merchants: mocks.NewMerchantServiceClient(t), Orders: mocks.NewOrderServiceClient(t),
		Products: refv1.NewProductServiceClient(conn), Verifier: auth.NewVerifier(secret, issuer, audience),
	})
	require.NoError(t, err)
	f := &fixture{h: h}

	fresh := f.do(t, http.MethodGet, "/products/p-001", "", nil)
	require.Equal(t, http.StatusOK, fresh.Code)
	assert.Empty(t, fresh.Header().Get(gateway.HeaderFallback))
	list := f.do(t, http.MethodGet, "/products", "", nil)
	require.Equal(t, http.StatusOK, list.Code)

	fake.failing.Store(true)
	stale := f.do(t, http.MethodGet, "/products/p-001", "", nil)
	require.Equal(t, http.StatusOK, stale.Code, stale.Body.String())
	assert.Equal(t, design.FallbackStaleCache, stale.Header().Get(gateway.HeaderFallback))
	assert.JSONEq(t, fresh.Body.String(), stale.Body.String())
	staleList := f.do(t, http.MethodGet, "/products", "", nil)
	require.Equal(t, http.StatusOK, staleList.Code)
	assert.Equal(t, design.FallbackStaleCache, staleList.Header().Get(gateway.HeaderFallback))

	never := f.do(t, http.MethodGet, "/products/p-002", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, never.Code, "nothing cached: the failure shows")
	assert.Equal(t, "1", never.Header().Get("Retry-After"))
}

func TestNewHandlerNeedsDeps(t *testing.T) {
	_, err := gateway.NewHandler(gateway.Deps{})
	assert.Error(t, err)
	_, err = gateway.NewHandler(gateway.Deps{
		Merchants: mocks.NewMerchantServiceClient(t), Orders: mocks.NewOrderServiceClient(t),
		Products: mocks.NewProductServiceClient(t), Verifier: auth.NewVerifier(secret, issuer, audience),
	}, gateway.WithLimits(design.GatewayLimits{MaxInFlight: -1}))
	assert.ErrorContains(t, err, "gateway.max_in_flight")
}
