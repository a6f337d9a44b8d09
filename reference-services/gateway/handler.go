// Package gateway is the reference system's only REST entry: bearer-token authentication,
// admission control (bodies read under a deadline and a per-client cap before admission,
// in-flight cap, per-client rate limit, body size), routing to the
// merchant, product and order services over gRPC, an aggregated order page, and the one
// place where gRPC codes become HTTP statuses.
//
// The gateway is also the single point of failure and the bottleneck the seed warns about,
// so it sheds load early (503/429 with Retry-After) rather than queueing without bound, and
// the design can run several of them.
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/auth"
	"github.com/faultline-dev/faultline/reference-services/design"
	"github.com/faultline-dev/faultline/reference-services/resilience"
)

// Response headers the harness and clients read.
const (
	HeaderServedBy         = "X-Served-By"
	HeaderFallback         = "X-Fallback"
	HeaderRequestID        = "X-Request-Id"
	HeaderIdempotencyKey   = "Idempotency-Key"
	HeaderIdempotentReplay = "Idempotent-Replayed"
	FallbackPartial        = "partial"
	maxIdempotencyKeyLen   = 128
)

// Shed reasons in faultline_http_shed_total.
const (
	ShedInFlight  = "in_flight"
	ShedRateLimit = "rate_limit"
	ShedBodySize  = "body_size"
	// ShedBodyTimeout: the body did not arrive within the body deadline (408).
	ShedBodyTimeout = "body_timeout"
	// ShedClientBodies: the client already had its cap of bodies being read (429).
	ShedClientBodies = "client_bodies"
)

// Body reading defaults: a body arrives whole within DefaultBodyTimeout of the handler
// starting to read it, and one client reads at most DefaultMaxBodiesPerClient at once. Both
// bound what slow senders can hold: the body is read before admission, so a slow body holds
// a goroutine and a connection, never one of the in-flight slots.
const (
	DefaultBodyTimeout        = 5 * time.Second
	DefaultMaxBodiesPerClient = 16
)

// Deps are the gateway's dependencies. The clients are usually gRPC connections carrying
// resilience interceptors (see Run); tests pass mocks or clients of in-process servers.
type Deps struct {
	Merchants refv1.MerchantServiceClient
	Products  refv1.ProductServiceClient
	Orders    refv1.OrderServiceClient
	Verifier  *auth.Verifier
	// Edges, keyed by dependency ("merchant", "product", "order"), let the handler count
	// the fallbacks it serves itself (the partial order page). Optional.
	Edges map[string]*resilience.Edge
}

// Option configures the handler.
type Option func(*options)

type options struct {
	name        string
	log         *slog.Logger
	reg         prometheus.Registerer
	limits      design.GatewayLimits
	bodyTimeout time.Duration
	maxBodies   int
}

// WithName sets the X-Served-By value, so that clients of two gateways can tell them apart.
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithLogger sets the logger for internal errors (which are logged, never sent).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the HTTP metrics with reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithLimits sets the admission limits (default: none, and a 1 MiB body limit).
func WithLimits(l design.GatewayLimits) Option { return func(o *options) { o.limits = l } }

// WithBodyLimits sets how long a request body may take to arrive and how many bodies one
// client (token subject, else remote IP) may be sending at once (defaults
// DefaultBodyTimeout, DefaultMaxBodiesPerClient).
func WithBodyLimits(timeout time.Duration, perClient int) Option {
	return func(o *options) { o.bodyTimeout, o.maxBodies = timeout, perClient }
}

type handler struct {
	deps     Deps
	o        options
	mux      *http.ServeMux
	inflight chan struct{} // nil when unlimited
	clients  *clientLimiter
	bodies   *clientCounter
	m        httpMetrics
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
	shed     *prometheus.CounterVec
}

// NewHandler builds the REST handler.
func NewHandler(deps Deps, opts ...Option) (http.Handler, error) {
	o := options{name: "gateway", log: slog.New(slog.DiscardHandler), bodyTimeout: DefaultBodyTimeout, maxBodies: DefaultMaxBodiesPerClient}
	for _, opt := range opts {
		opt(&o)
	}
	if o.bodyTimeout <= 0 || o.maxBodies < 1 {
		return nil, fmt.Errorf("build gateway: body timeout %s and bodies per client %d must be positive", o.bodyTimeout, o.maxBodies)
	}
	if deps.Merchants == nil || deps.Products == nil || deps.Orders == nil || deps.Verifier == nil {
		return nil, errors.New("build gateway: merchant, product and order clients and a verifier are required")
	}
	if errs := (design.Design{Gateway: o.limits}).Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("build gateway: %w", errors.Join(errs...))
	}
	if o.limits.MaxBodyBytes == 0 {
		o.limits.MaxBodyBytes = design.DefaultMaxBodyBytes
	}
	h := &handler{deps: deps, o: o, mux: http.NewServeMux(), bodies: &clientCounter{n: map[string]int{}}}
	if o.limits.MaxInFlight > 0 {
		h.inflight = make(chan struct{}, o.limits.MaxInFlight)
	}
	if o.limits.ClientRPS > 0 {
		h.clients = newClientLimiter(o.limits.ClientRPS, max(o.limits.ClientBurst, 1))
	}
	h.m = httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_http_requests_total", Help: "Gateway requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "faultline_http_request_duration_seconds", Help: "Gateway request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_http_inflight", Help: "Gateway requests in flight.",
		}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_http_shed_total", Help: "Requests the gateway refused to protect itself, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range []string{ShedInFlight, ShedRateLimit, ShedBodySize, ShedBodyTimeout, ShedClientBodies} {
		h.m.shed.WithLabelValues(r)
	}
	if o.reg != nil {
		for _, c := range []prometheus.Collector{h.m.requests, h.m.duration, h.m.inflight, h.m.shed} {
			if err := o.reg.Register(c); err != nil {
				return nil, fmt.Errorf("register gateway metrics: %w", err)
			}
		}
	}
	h.route("GET /products", h.listProducts)
	h.route("GET /products/{id}", h.getProduct)
	h.route("GET /merchants/{id}", h.getMerchant)
	h.route("POST /orders", h.placeOrder)
	h.route("GET /orders/{id}", h.orderPage)
	h.mux.Handle("/", h.instrument("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, http.StatusNotFound, "not found")
	})))
	return h.mux, nil
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keySubject
	keyVerified
)

func requestID(ctx context.Context) string { s, _ := ctx.Value(keyRequestID).(string); return s }

// route wraps a handler with, in order: metrics, reading the body, in-flight admission,
// authentication and the per-client rate limit. The body is read before admission so that
// a client sending it slowly holds no in-flight slot; admission comes before authentication
// so that a flood is shed before it costs anything; the per-client limit needs the token's
// subject, so it follows.
func (h *handler) route(pattern string, fn func(http.ResponseWriter, *http.Request)) {
	h.mux.Handle(pattern, h.instrument(pattern, h.readBody(h.admit(h.authenticate(h.limitClient(http.HandlerFunc(fn)))))))
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (the body deadline needs it).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (h *handler) instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(HeaderServedBy, h.o.name)
		w.Header().Set(HeaderRequestID, id)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), keyRequestID, id)))
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		h.m.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		h.m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// readBody reads the whole body, bounded in size, before the request is admitted: within
// the body deadline, and at most maxBodies at once per client. A client that announces a
// body and sends it slowly (or never) so holds one goroutine per connection for at most the
// deadline, up to its cap, and never an in-flight slot that other clients need. The client
// is the token's subject when the token verifies, else the remote IP: the cap must hold
// before authentication has answered, and a forged token only lands on the IP's cap.
func (h *handler) readBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > h.o.limits.MaxBodyBytes {
			h.m.shed.WithLabelValues(ShedBodySize).Inc()
			h.refuseBody(w, r, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		r = h.verifyOnce(r)
		client := h.clientOf(r)
		if !h.bodies.acquire(client, h.o.maxBodies) {
			h.m.shed.WithLabelValues(ShedClientBodies).Inc()
			w.Header().Set("Retry-After", "1")
			h.refuseBody(w, r, http.StatusTooManyRequests, "too many requests being sent at once, retry later")
			return
		}
		body, err := h.readAll(w, r)
		h.bodies.release(client)
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			h.m.shed.WithLabelValues(ShedBodySize).Inc()
			h.refuseBody(w, r, http.StatusRequestEntityTooLarge, "request body too large")
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			h.m.shed.WithLabelValues(ShedBodyTimeout).Inc()
			h.refuseBody(w, r, http.StatusRequestTimeout, "request body not received in time")
			return
		case err != nil: // cut short or malformed (a bad chunk)
			h.refuseBody(w, r, http.StatusBadRequest, "request body unreadable")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// readAll reads r's body within the body deadline. Where the connection offers no read
// deadline (tests' recorders), the body is already in memory.
func (h *handler) readAll(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(h.o.bodyTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, fmt.Errorf("set body deadline: %w", err)
	}
	// Once the body is read to its end the server clears the deadline itself (it then
	// watches the connection for the client going away), so handling may outlast it.
	return io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.limits.MaxBodyBytes))
}

// refuseBody answers without the body and closes the connection: the rest of the body
// would otherwise be waited for, by the server, before the next request.
func (h *handler) refuseBody(w http.ResponseWriter, r *http.Request, code int, msg string) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	h.writeError(w, r, code, msg)
}

// verification is a token's signature check done once per request, when its body began to
// arrive (the body cap needs the subject), and reused by authenticate.
type verification struct {
	token  string
	claims auth.Claims
	err    error
}

// verifyOnce verifies r's bearer token, if it has one, and keeps the outcome in r's context.
func (h *handler) verifyOnce(r *http.Request) *http.Request {
	token, err := bearer(r.Header.Get("Authorization"))
	if err != nil {
		return r
	}
	c, err := h.deps.Verifier.Verify(token)
	return r.WithContext(context.WithValue(r.Context(), keyVerified, verification{token: token, claims: c, err: err}))
}

// verify returns the claims of r's token. A signature already checked for this request is
// not checked again, but the claims' times are judged now: a token that expired while the
// body arrived is refused as expired.
func (h *handler) verify(r *http.Request) (auth.Claims, error) {
	token, err := bearer(r.Header.Get("Authorization"))
	if err != nil {
		return auth.Claims{}, err
	}
	if v, ok := r.Context().Value(keyVerified).(verification); ok && v.token == token {
		if v.err != nil {
			return auth.Claims{}, v.err
		}
		return v.claims, h.deps.Verifier.StillValid(v.claims)
	}
	return h.deps.Verifier.Verify(token)
}

// clientOf names the client a body is read for: its verified token subject, else its IP.
func (h *handler) clientOf(r *http.Request) string {
	if v, ok := r.Context().Value(keyVerified).(verification); ok && v.err == nil {
		return "sub:" + v.claims.Subject
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}

func (h *handler) admit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.inflight != nil {
			select {
			case h.inflight <- struct{}{}:
			default:
				if !h.waitSlot(r.Context()) {
					h.m.shed.WithLabelValues(ShedInFlight).Inc()
					w.Header().Set("Retry-After", "1")
					h.writeError(w, r, http.StatusServiceUnavailable, "overloaded, retry later")
					return
				}
			}
			defer func() { <-h.inflight }()
		}
		h.m.inflight.Inc()
		defer h.m.inflight.Dec()
		next.ServeHTTP(w, r)
	})
}

func (h *handler) waitSlot(ctx context.Context) bool {
	wait := h.o.limits.MaxQueueWait.Std()
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case h.inflight <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (h *handler) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := h.verify(r)
		if err != nil {
			h.o.log.Debug("refused token", "request_id", requestID(r.Context()), "err", err)
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			h.writeError(w, r, http.StatusUnauthorized, auth.Reason(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keySubject, claims.Subject)))
	})
}

func bearer(header string) (string, error) {
	if header == "" {
		return "", auth.ErrMissing
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", auth.ErrMalformed
	}
	return strings.TrimSpace(token), nil
}

func (h *handler) limitClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.clients != nil {
			subject, _ := r.Context().Value(keySubject).(string)
			if ok, wait := h.clients.allow(subject, time.Now()); !ok {
				h.m.shed.WithLabelValues(ShedRateLimit).Inc()
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))))
				h.writeError(w, r, http.StatusTooManyRequests, "rate limit exceeded, retry later")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// --- routes ---

func (h *handler) listProducts(w http.ResponseWriter, r *http.Request) {
	ctx, note := resilience.TrackFallback(r.Context())
	resp, err := h.deps.Products.ListProducts(ctx, &refv1.ListProductsRequest{})
	if err != nil {
		h.writeGRPCError(w, r, "product", err)
		return
	}
	setFallback(w, note)
	out := make([]productJSON, 0, len(resp.GetProducts()))
	for _, p := range resp.GetProducts() {
		out = append(out, toProduct(p))
	}
	writeJSON(w, http.StatusOK, map[string]any{"products": out})
}

func (h *handler) getProduct(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		h.writeError(w, r, http.StatusBadRequest, "invalid product id")
		return
	}
	ctx, note := resilience.TrackFallback(r.Context())
	p, err := h.deps.Products.GetProduct(ctx, &refv1.GetProductRequest{Id: id})
	if err != nil {
		h.writeGRPCError(w, r, "product", err)
		return
	}
	setFallback(w, note)
	writeJSON(w, http.StatusOK, toProduct(p))
}

func (h *handler) getMerchant(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		h.writeError(w, r, http.StatusBadRequest, "invalid merchant id")
		return
	}
	ctx, note := resilience.TrackFallback(r.Context())
	m, err := h.deps.Merchants.GetMerchant(ctx, &refv1.GetMerchantRequest{Id: id})
	if err != nil {
		h.writeGRPCError(w, r, "merchant", err)
		return
	}
	setFallback(w, note)
	writeJSON(w, http.StatusOK, toMerchant(m))
}

type placeOrderJSON struct {
	MerchantID string `json:"merchant_id"`
	ProductID  string `json:"product_id"`
	Quantity   int64  `json:"quantity"`
}

func (h *handler) placeOrder(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get(HeaderIdempotencyKey)
	switch {
	case key == "":
		h.writeError(w, r, http.StatusBadRequest, "Idempotency-Key header is required")
		return
	case len(key) > maxIdempotencyKeyLen || !printable(key):
		h.writeError(w, r, http.StatusBadRequest, fmt.Sprintf("Idempotency-Key must be 1 to %d printable characters", maxIdempotencyKeyLen))
		return
	}
	body, err := io.ReadAll(r.Body) // read whole, within its deadline, by readBody
	if err != nil {
		h.writeError(w, r, http.StatusBadRequest, "request body unreadable")
		return
	}
	var in placeOrderJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		h.writeError(w, r, http.StatusBadRequest, "body must be JSON {merchant_id, product_id, quantity}")
		return
	}
	if dec.More() {
		h.writeError(w, r, http.StatusBadRequest, "body must hold one JSON object")
		return
	}
	var problems []string
	if !validID(in.MerchantID) {
		problems = append(problems, "merchant_id is required")
	}
	if !validID(in.ProductID) {
		problems = append(problems, "product_id is required")
	}
	if in.Quantity < 1 || in.Quantity > 1_000_000 {
		problems = append(problems, "quantity must be between 1 and 1000000")
	}
	if len(problems) > 0 {
		h.writeError(w, r, http.StatusBadRequest, strings.Join(problems, "; "))
		return
	}
	subject, _ := r.Context().Value(keySubject).(string)
	resp, err := h.deps.Orders.PlaceOrder(r.Context(), &refv1.PlaceOrderRequest{
		IdempotencyKey: key, MerchantId: in.MerchantID, ProductId: in.ProductID, Quantity: in.Quantity,
		Owner: subject, Fingerprint: Fingerprint(r.Method, r.URL.RequestURI(), body),
	})
	if status.Code(err) == codes.AlreadyExists {
		// The order service's one AlreadyExists: this subject's key was first used with
		// another request (draft-ietf-httpapi-idempotency-key-header: 422).
		h.writeError(w, r, http.StatusUnprocessableEntity, "Idempotency-Key was already used with a different request")
		return
	}
	if err != nil {
		h.writeGRPCError(w, r, "order", err)
		return
	}
	w.Header().Set("Location", "/orders/"+resp.GetOrder().GetId())
	if resp.GetReplayed() {
		w.Header().Set(HeaderIdempotentReplay, "true")
		writeJSON(w, http.StatusOK, toOrder(resp.GetOrder()))
		return
	}
	writeJSON(w, http.StatusCreated, toOrder(resp.GetOrder()))
}

// Fingerprint identifies a request for its idempotency key: a hash of its method, path and
// body, so that a key reused for any other request is told apart from a retry.
func Fingerprint(method, path string, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", method, path)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

type orderPageJSON struct {
	Order       orderJSON     `json:"order"`
	Product     *productJSON  `json:"product"`
	Merchant    *merchantJSON `json:"merchant"`
	Unavailable []string      `json:"unavailable,omitempty"`
}

// orderPage joins order, product and merchant. The order is essential; the other two are
// fetched concurrently and, when they fail, marked unavailable instead of failing the page:
// a degraded page beats an error page when the order itself is known.
func (h *handler) orderPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		h.writeError(w, r, http.StatusBadRequest, "invalid order id")
		return
	}
	subject, _ := r.Context().Value(keySubject).(string)
	o, err := h.deps.Orders.GetOrder(r.Context(), &refv1.GetOrderRequest{Id: id, Owner: subject})
	if err != nil {
		h.writeGRPCError(w, r, "order", err)
		return
	}
	page := orderPageJSON{Order: toOrder(o)}
	ctx, note := resilience.TrackFallback(r.Context())
	var wg sync.WaitGroup
	var perr, merr error
	wg.Go(func() {
		var p *refv1.Product
		if p, perr = h.deps.Products.GetProduct(ctx, &refv1.GetProductRequest{Id: o.GetProductId()}); perr == nil {
			pj := toProduct(p)
			page.Product = &pj
		}
	})
	wg.Go(func() {
		var m *refv1.Merchant
		if m, merr = h.deps.Merchants.GetMerchant(ctx, &refv1.GetMerchantRequest{Id: o.GetMerchantId()}); merr == nil {
			mj := toMerchant(m)
			page.Merchant = &mj
		}
	})
	wg.Wait()
	for _, part := range []struct {
		dep string
		err error
	}{{"product", perr}, {"merchant", merr}} {
		if part.err == nil {
			continue
		}
		page.Unavailable = append(page.Unavailable, part.dep)
		if e := h.deps.Edges[part.dep]; e != nil {
			e.RecordFallback()
		}
		h.o.log.Warn("order page part unavailable", "request_id", requestID(r.Context()), "part", part.dep, "err", part.err)
	}
	switch {
	case len(page.Unavailable) > 0:
		w.Header().Set(HeaderFallback, FallbackPartial)
	default:
		setFallback(w, note)
	}
	writeJSON(w, http.StatusOK, page)
}

func setFallback(w http.ResponseWriter, note *resilience.FallbackNote) {
	if s := note.Served(); s != "" {
		w.Header().Set(HeaderFallback, s)
	}
}

// --- errors ---

// StatusFor maps a gRPC error to an HTTP status and a message safe to send: the only place
// in the system where gRPC codes become HTTP statuses. retryAfter is true for statuses
// that tell the client to come back later.
func StatusFor(err error) (code int, msg string, retryAfter bool) {
	switch status.Code(err) {
	case codes.OK:
		return http.StatusOK, "", false
	case codes.NotFound:
		return http.StatusNotFound, "not found", false
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest, "invalid request", false
	case codes.AlreadyExists, codes.FailedPrecondition:
		return http.StatusConflict, "request conflicts with the current state", false
	case codes.PermissionDenied:
		return http.StatusForbidden, "forbidden", false
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests, "too many requests, retry later", true
	case codes.Unavailable, codes.Aborted, codes.Canceled:
		return http.StatusServiceUnavailable, "service unavailable, retry later", true
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout, "upstream timed out", false
	default:
		return http.StatusBadGateway, "upstream error", false
	}
}

func (h *handler) writeGRPCError(w http.ResponseWriter, r *http.Request, dep string, err error) {
	code, msg, retry := StatusFor(err)
	h.o.log.Warn("dependency call failed", "request_id", requestID(r.Context()), "dependency", dep, "status", code, "err", err)
	if retry {
		w.Header().Set("Retry-After", "1")
	}
	h.writeError(w, r, code, msg)
}

func (h *handler) writeError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg, "request_id": requestID(r.Context())})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || unicode.IsLetter(c) || unicode.IsDigit(c)) || c > unicode.MaxASCII {
			return false
		}
	}
	return true
}

func validID(s string) bool { return s != "" && len(s) <= 128 && printable(s) }

func printable(s string) bool {
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// --- JSON views ---

type productJSON struct {
	ID           string `json:"id"`
	MerchantID   string `json:"merchant_id"`
	Name         string `json:"name"`
	PriceCents   int64  `json:"price_cents"`
	Stock        int64  `json:"stock"`
	InitialStock int64  `json:"initial_stock"`
}

func toProduct(p *refv1.Product) productJSON {
	return productJSON{ID: p.GetId(), MerchantID: p.GetMerchantId(), Name: p.GetName(), PriceCents: p.GetPriceCents(), Stock: p.GetStock(), InitialStock: p.GetInitialStock()}
}

type merchantJSON struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Active bool   `json:"active"`
}

func toMerchant(m *refv1.Merchant) merchantJSON {
	return merchantJSON{ID: m.GetId(), Name: m.GetName(), Active: m.GetActive()}
}

type orderJSON struct {
	ID             string `json:"id"`
	IdempotencyKey string `json:"idempotency_key"`
	MerchantID     string `json:"merchant_id"`
	ProductID      string `json:"product_id"`
	Quantity       int64  `json:"quantity"`
	Status         string `json:"status"`
	CreatedUnixMs  int64  `json:"created_unix_ms"`
}

func toOrder(o *refv1.Order) orderJSON {
	return orderJSON{ID: o.GetId(), IdempotencyKey: o.GetIdempotencyKey(), MerchantID: o.GetMerchantId(), ProductID: o.GetProductId(), Quantity: o.GetQuantity(), Status: o.GetStatus(), CreatedUnixMs: o.GetCreatedUnixMs()}
}

// --- per-client body cap ---

// clientCounter counts what each client has under way; a client with nothing under way
// is forgotten, so the map holds only clients sending a body right now.
type clientCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *clientCounter) acquire(client string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[client] >= limit {
		return false
	}
	c.n[client]++
	return true
}

func (c *clientCounter) release(client string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[client]--; c.n[client] <= 0 {
		delete(c.n, client)
	}
}

// --- per-client rate limit ---

// clientLimiter is a token bucket per client. It forgets idle clients so that many
// distinct subjects cannot grow it without bound.
type clientLimiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxClients = 10_000

func newClientLimiter(rps float64, burst int) *clientLimiter {
	return &clientLimiter{rate: rps, burst: float64(burst), buckets: map[string]*bucket{}}
}

func (c *clientLimiter) allow(client string, now time.Time) (bool, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.buckets[client]
	if !ok {
		if len(c.buckets) >= maxClients {
			c.evict(now)
		}
		b = &bucket{tokens: c.burst, last: now}
		c.buckets[client] = b
	}
	b.tokens = min(c.burst, b.tokens+now.Sub(b.last).Seconds()*c.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / c.rate * float64(time.Second))
}

func (c *clientLimiter) evict(now time.Time) {
	full := time.Duration(c.burst / c.rate * float64(time.Second))
	for k, b := range c.buckets {
		if now.Sub(b.last) > full { // refilled: forgetting it changes nothing
			delete(c.buckets, k)
		}
	}
	if len(c.buckets) >= maxClients {
		for k := range c.buckets {
			delete(c.buckets, k)
			if len(c.buckets) < maxClients/2 {
				break
			}
		}
	}
}
