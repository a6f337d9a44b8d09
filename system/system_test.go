package system_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/auth"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/registry"
	"github.com/faultline-dev/faultline/reference-services/serve"
	"github.com/faultline-dev/faultline/runtime/images"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/system"
)

// TestMain lets the test binary double as the faultline binary: children started by the
// system under test are this binary re-executed with FAULTLINE_SERVE_CONFIG set.
func TestMain(m *testing.M) {
	serve.FromEnv()
	os.Exit(m.Run())
}

// A container's default command is where the image builders put the binary: system keeps
// its own copy of the path so as not to link them.
func TestImageBinaryPathMatchesTheImages(t *testing.T) {
	if got, want := system.ImageBinaryPath, images.FaultlinePath; got != want {
		t.Errorf("system.ImageBinaryPath = %q, want images.FaultlinePath %q", got, want)
	}
}

func TestServeConfigEnvMatches(t *testing.T) {
	// system cannot import serve (it would depend on every component), so it repeats the
	// variable's name; this pins the two together.
	dir := t.TempDir()
	rt := local.New()
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	_, err := system.Start(t.Context(), rt, system.Spec{Dir: dir, Command: "/bin/sh",
		Args: []string{"-c", `test "$` + serve.ConfigEnv + `" = "$2" && exit 9`, "sh"}},
		system.WithReadyTimeout(20*time.Second))
	require.Error(t, err)
	assert.ErrorContains(t, err, "exit status 9", "children must get %s=<their config path>", serve.ConfigEnv)
}

// testSpec starts children as this test binary.
func testSpec(t testing.TB, dir string) system.Spec {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	return system.Spec{Dir: dir, Command: exe}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startSystem starts the default system and registers its teardown.
func startSystem(t *testing.T) (*system.System, *local.Runtime) {
	t.Helper()
	dir := t.TempDir()
	rt := local.New()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, rt.Close(ctx))
		if t.Failed() {
			dumpLogs(t, filepath.Join(dir, "logs"))
		}
	})
	sys, err := system.Start(t.Context(), rt, testSpec(t, dir), system.WithLogger(testLogger(t)))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, sys.Stop(ctx))
	})
	t.Logf("system ready in %s", sys.ReadyDuration())
	return sys, rt
}

func dumpLogs(t *testing.T, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("--- %s (tail)\n%s", e.Name(), b)
	}
}

func TestSystem(t *testing.T) {
	sys, _ := startSystem(t)
	token, err := sys.Token("itest", time.Hour)
	require.NoError(t, err)
	gw := &gateway{url: sys.GatewayURL(), token: token, http: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, Proxy: nil},
	}}
	h := &history{}
	reads := newReader(t, sys)

	wantNames := []string{"registry-1", "broker-1", "merchant-1", "merchant-2", "product-1", "product-2", "order-1", "order-2", "gateway-1"}
	var gotNames []string
	for _, c := range sys.Components() {
		gotNames = append(gotNames, c.Name)
		assert.True(t, c.Process.Running(), c.Name)
	}
	require.Equal(t, wantNames, gotNames)

	t.Run("each component started once its own dependencies were ready", func(t *testing.T) {
		st := sys.Startup()
		want := map[string][]string{
			"registry-1": nil, "broker-1": nil,
			"merchant-1": {"registry-1"}, "merchant-2": {"registry-1"},
			"product-1": {"registry-1", "broker-1"}, "product-2": {"registry-1", "broker-1"},
			"order-1": {"registry-1", "broker-1"}, "order-2": {"registry-1", "broker-1"},
			"gateway-1": {"registry-1"},
		}
		ready := map[string]time.Duration{}
		for _, c := range st.Components {
			ready[c.Name] = c.Ready
		}
		require.Len(t, st.Components, len(want))
		for _, c := range st.Components {
			assert.Equal(t, want[c.Name], c.Deps, c.Name)
			for _, d := range c.Deps {
				assert.GreaterOrEqual(t, c.Start, ready[d], "%s started before its dependency %s was ready", c.Name, d)
			}
			assert.LessOrEqual(t, c.Ready, st.Ready, c.Name)
		}
		t.Logf("startup:\n%s", st)
	})

	t.Run("listeners bind loopback only", func(t *testing.T) {
		for _, c := range sys.Components() {
			addrs := listenAddrs(t, c.Process.PID())
			require.NotEmpty(t, addrs, "%s listens on nothing?", c.Name)
			for _, a := range addrs {
				assert.True(t, a.IP.IsLoopback(), "%s listens on %s", c.Name, a)
			}
			for _, want := range []string{c.Listen, c.Admin} {
				assert.Contains(t, addrStrings(addrs), want, "%s does not listen on its configured address", c.Name)
			}
		}
	})

	t.Run("bad tokens are refused", func(t *testing.T) {
		secret, err := auth.LoadOrCreateSecret(filepath.Join(sys.Spec().Dir, "secrets", "jwt.key"))
		require.NoError(t, err)
		now := time.Now()
		claims := func(mod func(c jwt.MapClaims)) jwt.MapClaims {
			c := jwt.MapClaims{"iss": system.Issuer, "aud": system.Audience, "sub": "mallory",
				"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
			if mod != nil {
				mod(c)
			}
			return c
		}
		sign := func(c jwt.MapClaims, key []byte) string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
			require.NoError(t, err)
			return s
		}
		none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		require.NoError(t, err)
		tests := []struct {
			name   string
			header string
		}{
			{"missing", ""},
			{"not bearer", "Basic dXNlcjpwYXNz"},
			{"malformed", "Bearer not.a.jwt"},
			{"wrong signature", "Bearer " + sign(claims(nil), []byte("another-secret-another-secret-32"))},
			{"expired", "Bearer " + sign(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }), secret)},
			{"not yet valid", "Bearer " + sign(claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), secret)},
			{"wrong issuer", "Bearer " + sign(claims(func(c jwt.MapClaims) { c["iss"] = "someone-else" }), secret)},
			{"wrong audience", "Bearer " + sign(claims(func(c jwt.MapClaims) { c["aud"] = "another-api" }), secret)},
			{"alg none", "Bearer " + none},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, body := gw.raw(t.Context(), http.MethodGet, "/products", tt.header, "", nil)
				assert.Equal(t, http.StatusUnauthorized, got, "body: %s", body)
				assert.Contains(t, string(body), `"error"`)
			})
		}
		t.Run("valid token is accepted", func(t *testing.T) {
			got, body := gw.raw(t.Context(), http.MethodGet, "/products", "Bearer "+token, "", nil)
			assert.Equal(t, http.StatusOK, got, "body: %s", body)
		})
	})

	catalog := sys.Spec().Catalog
	t.Run("500 orders from 20 clients, 5% re-sent, converge exactly once", func(t *testing.T) {
		const total, clients = 500, 20
		var next atomic.Int64
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(c), 42))
				for {
					i := int(next.Add(1)) - 1
					if i >= total {
						return
					}
					req := newOrder(catalog, rng, fmt.Sprintf("bulk-%d", i))
					first := gw.place(t.Context(), req)
					h.add(first)
					if i%20 == 0 { // 5 %: the client did not trust the first answer
						again := gw.place(t.Context(), req)
						h.add(again)
						if first.acked() && again.acked() {
							assert.Equal(t, first.id, again.id, "a re-sent key must return the same order")
							assert.Equal(t, http.StatusOK, again.status, "a re-sent key answers 200, not 201")
							assert.True(t, again.replayed, "a re-sent key carries Idempotent-Replayed")
						}
					}
				}
			})
		}
		wg.Wait()
		acked, failed := h.counts()
		t.Logf("acknowledged %d, not acknowledged %d", acked, failed)
		require.GreaterOrEqual(t, acked, total*95/100, "a healthy system acknowledges (nearly) every order")
		converged := reads.converge(t, h, 5*time.Second)
		t.Logf("converged %s after the last acknowledgement", converged)
	})

	t.Run("SIGKILL of an order replica: lease expires, gateway keeps answering", func(t *testing.T) {
		ttl := sys.Spec().LeaseTTL
		require.Contains(t, instanceNames(reads.watch.Instances("order")), "order-1")
		load := startLoad(t, gw, catalog, h, 4, "failover")
		time.Sleep(300 * time.Millisecond)

		killed := time.Now()
		require.NoError(t, sys.Kill("order-1"))
		var dropped time.Duration
		require.Eventually(t, func() bool {
			if !contains(instanceNames(reads.watch.Instances("order")), "order-1") {
				dropped = time.Since(killed)
				return true
			}
			return false
		}, ttl+time.Second, 10*time.Millisecond, "order-1 still registered %s after SIGKILL", ttl+time.Second)
		time.Sleep(time.Second)
		res := load.stop()
		t.Logf("registry dropped order-1 %s after SIGKILL (lease TTL %s)", dropped, ttl)
		t.Logf("gateway during failover: %d ok, %d errors, error window %s (first error %s after the kill)",
			res.ok, res.errors, res.window(), res.firstErrorAfter(killed))
		require.Greater(t, res.ok, 0)
		assert.GreaterOrEqual(t, float64(res.ok)/float64(res.ok+res.errors), 0.9, "the gateway must keep answering with one order replica down")

		require.NoError(t, sys.Restart(t.Context(), "order-1"))
		require.Eventually(t, func() bool { return contains(instanceNames(reads.watch.Instances("order")), "order-1") },
			30*time.Second, 20*time.Millisecond, "order-1 re-registers after restart")
	})

	t.Run("broker paused for 5s: orders accepted, stock converges after", func(t *testing.T) {
		require.NoError(t, sys.Pause("broker-1"))
		resumed := false
		t.Cleanup(func() {
			if !resumed {
				_ = sys.Resume("broker-1")
			}
		})
		load := startLoad(t, gw, catalog, h, 4, "broker-outage")
		time.Sleep(5 * time.Second)
		res := load.stop()
		require.NoError(t, sys.Resume("broker-1"))
		resumed = true
		healed := time.Now()
		t.Logf("while the broker was paused: %d orders acknowledged, %d errors", res.ok, res.errors)
		require.Greater(t, res.ok, 0, "orders must be accepted while the broker is away (outbox)")
		assert.GreaterOrEqual(t, float64(res.ok)/float64(res.ok+res.errors), 0.9)
		converged := reads.converge(t, h, 30*time.Second)
		t.Logf("stock converged %s after the broker returned (%s of polling)", time.Since(healed), converged)
	})
}

// --- the gateway as a client sees it ---

type gateway struct {
	url, token string
	http       *http.Client
}

type orderReq struct {
	key       string
	merchant  string
	product   string
	quantity  int64
	productIx int
}

func newOrder(c config.Catalog, rng *rand.Rand, key string) orderReq {
	i := rng.IntN(c.Products)
	return orderReq{key: key, merchant: c.ProductMerchant(i), product: config.ProductID(i), quantity: 1 + rng.Int64N(3), productIx: i}
}

// outcome is one request of the history, Jepsen-style: acked (2xx with an id), failed (4xx:
// certainly not applied) or indeterminate (timeouts, 5xx: may or may not have happened).
type outcome struct {
	req      orderReq
	status   int
	id       string
	replayed bool
	err      error
	at       time.Time
}

func (o outcome) acked() bool { return o.status >= 200 && o.status < 300 && o.id != "" }

func (g *gateway) raw(ctx context.Context, method, path, authz, key string, body []byte) (int, []byte) {
	st, b, _, err := g.do(ctx, method, path, authz, key, body)
	if err != nil {
		return 0, []byte(err.Error())
	}
	return st, b
}

func (g *gateway) do(ctx context.Context, method, path, authz, key string, body []byte) (int, []byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, g.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, resp.Header, err
}

func (g *gateway) place(ctx context.Context, r orderReq) outcome {
	body, _ := json.Marshal(map[string]any{"merchant_id": r.merchant, "product_id": r.product, "quantity": r.quantity})
	st, b, hdr, err := g.do(ctx, http.MethodPost, "/orders", "Bearer "+g.token, r.key, body)
	o := outcome{req: r, status: st, err: err, at: time.Now()}
	if err == nil && st >= 200 && st < 300 {
		var v struct {
			ID    string `json:"id"`
			Order struct {
				ID string `json:"id"`
			} `json:"order"`
		}
		if jerr := json.Unmarshal(b, &v); jerr == nil {
			o.id = v.ID
			if o.id == "" {
				o.id = v.Order.ID
			}
		}
		o.replayed = hdr.Get("Idempotent-Replayed") == "true"
	}
	if err == nil && !o.acked() {
		o.err = fmt.Errorf("status %d: %.200s", st, b)
	}
	return o
}

type history struct {
	mu  sync.Mutex
	all []outcome
}

func (h *history) add(o outcome) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.all = append(h.all, o)
}

func (h *history) snapshot() []outcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]outcome(nil), h.all...)
}

func (h *history) counts() (acked, other int) {
	for _, o := range h.snapshot() {
		if o.acked() {
			acked++
		} else {
			other++
		}
	}
	return acked, other
}

// --- background load during a fault ---

type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	res    loadResult
}

type loadResult struct {
	ok, errors     int
	firstErr, last time.Time
	errs           map[string]int
}

func (r loadResult) window() time.Duration {
	if r.firstErr.IsZero() {
		return 0
	}
	return r.last.Sub(r.firstErr)
}

func (r loadResult) firstErrorAfter(t time.Time) time.Duration {
	if r.firstErr.IsZero() {
		return 0
	}
	return r.firstErr.Sub(t)
}

func startLoad(t *testing.T, gw *gateway, c config.Catalog, h *history, clients int, prefix string) *load {
	ctx, cancel := context.WithCancel(t.Context())
	l := &load{cancel: cancel, res: loadResult{errs: map[string]int{}}}
	var seq atomic.Int64
	for w := range clients {
		l.wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(len(prefix))))
			for ctx.Err() == nil {
				o := gw.place(ctx, newOrder(c, rng, fmt.Sprintf("%s-%d", prefix, seq.Add(1))))
				if ctx.Err() != nil && errors.Is(o.err, context.Canceled) {
					return
				}
				h.add(o)
				l.mu.Lock()
				if o.acked() {
					l.res.ok++
				} else {
					l.res.errors++
					if l.res.firstErr.IsZero() {
						l.res.firstErr = o.at
					}
					l.res.last = o.at
					l.res.errs[fmt.Sprint(o.err)]++
				}
				l.mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	return l
}

func (l *load) stop() loadResult {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res
}

// --- reading the final state through gRPC, discovered through the registry ---

type reader struct {
	watch    *registry.Watcher
	orders   refv1.OrderServiceClient
	products refv1.ProductServiceClient
}

func newReader(t *testing.T, sys *system.System) *reader {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := testLogger(t)
	c, err := registry.Connect(ctx, sys.RegistryEndpoints(), prometheus.NewRegistry(), log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	w, err := c.Watch(ctx, "faultline-test", false, prometheus.NewRegistry())
	require.NoError(t, err)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	require.NoError(t, w.WaitFor(wctx, "order", 2))
	require.NoError(t, w.WaitFor(wctx, "product", 2))
	dial := func(service string) *grpc.ClientConn {
		cc, err := registry.Dial(w, "client", "", service, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = cc.Close() })
		return cc
	}
	return &reader{watch: w, orders: refv1.NewOrderServiceClient(dial("order")), products: refv1.NewProductServiceClient(dial("product"))}
}

type state struct {
	orders   []*refv1.Order
	products []*refv1.Product
	applied  []*refv1.AppliedEvent
}

func (r *reader) read(ctx context.Context) (state, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var s state
	stream, err := r.orders.ListOrders(ctx, &refv1.ListOrdersRequest{})
	if err != nil {
		return s, fmt.Errorf("list orders: %w", err)
	}
	for {
		o, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s, fmt.Errorf("list orders: %w", err)
		}
		s.orders = append(s.orders, o)
	}
	ps, err := r.products.ListProducts(ctx, &refv1.ListProductsRequest{})
	if err != nil {
		return s, fmt.Errorf("list products: %w", err)
	}
	s.products = ps.GetProducts()
	as, err := r.products.AppliedEvents(ctx, &refv1.AppliedEventsRequest{})
	if err != nil {
		return s, fmt.Errorf("applied events: %w", err)
	}
	for {
		e, err := as.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s, fmt.Errorf("applied events: %w", err)
		}
		s.applied = append(s.applied, e)
	}
	return s, nil
}

// check returns every consistency violation of s against the history h.
func check(h []outcome, s state) (safety, liveness []string) {
	byKey := map[string][]*refv1.Order{}
	byID := map[string]*refv1.Order{}
	for _, o := range s.orders {
		byKey[o.GetIdempotencyKey()] = append(byKey[o.GetIdempotencyKey()], o)
		byID[o.GetId()] = o
	}
	// Safety: every acknowledged order exists exactly once, with the id the client got.
	for _, o := range h {
		if !o.acked() {
			continue
		}
		got := byKey[o.req.key]
		switch {
		case len(got) != 1:
			safety = append(safety, fmt.Sprintf("key %s: %d orders, want exactly 1", o.req.key, len(got)))
		case got[0].GetId() != o.id:
			safety = append(safety, fmt.Sprintf("key %s: order %s, acknowledged as %s", o.req.key, got[0].GetId(), o.id))
		}
	}
	for k, same := range byKey {
		if len(same) > 1 {
			safety = append(safety, fmt.Sprintf("key %s: %d orders", k, len(same)))
		}
	}
	seen := map[string]bool{}
	for _, e := range s.applied {
		if seen[e.GetOrderId()] {
			safety = append(safety, "event applied twice: "+e.GetOrderId())
		}
		seen[e.GetOrderId()] = true
		if byID[e.GetOrderId()] == nil {
			safety = append(safety, "event applied for an order that does not exist: "+e.GetOrderId())
		}
	}
	// Liveness (converges): stock = initial − Σ quantity of existing orders, and every order applied.
	sold := map[string]int64{}
	for _, o := range s.orders {
		sold[o.GetProductId()] += o.GetQuantity()
		if !seen[o.GetId()] {
			liveness = append(liveness, "order not applied yet: "+o.GetId())
		}
	}
	for _, p := range s.products {
		if want := p.GetInitialStock() - sold[p.GetId()]; p.GetStock() != want {
			liveness = append(liveness, fmt.Sprintf("%s: stock %d, want %d", p.GetId(), p.GetStock(), want))
		}
	}
	return safety, liveness
}

// converge waits until the state is consistent with h and returns how long that took.
func (r *reader) converge(t *testing.T, h *history, within time.Duration) time.Duration {
	t.Helper()
	hist := h.snapshot()
	start := time.Now()
	var last state
	var lastLive []string
	ok := assert.Eventually(t, func() bool {
		s, err := r.read(t.Context())
		if err != nil {
			lastLive = []string{err.Error()}
			return false
		}
		last = s
		safety, live := check(hist, s)
		require.Empty(t, safety, "consistency violated")
		lastLive = live
		return len(live) == 0
	}, within, 100*time.Millisecond)
	if !ok {
		t.Fatalf("not converged within %s: %d problems, first: %v", within, len(lastLive), head(lastLive, 5))
	}
	ackedKeys := map[string]bool{}
	for _, o := range hist {
		if o.acked() {
			ackedKeys[o.req.key] = true
		}
	}
	t.Logf("state: %d orders (%d distinct keys acknowledged in the history), %d applied events, %d products",
		len(last.orders), len(ackedKeys), len(last.applied), len(last.products))
	require.GreaterOrEqual(t, len(last.orders), len(ackedKeys))
	return time.Since(start)
}

func head(s []string, n int) []string { return s[:min(n, len(s))] }

func instanceNames(is []registry.Instance) []string {
	var out []string
	for _, i := range is {
		out = append(out, i.Name)
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// --- which addresses a process listens on, from /proc ---

// listenAddrs returns the TCP addresses pid listens on: its socket inodes from
// /proc/PID/fd matched against the LISTEN rows of /proc/PID/net/tcp{,6}.
func listenAddrs(t *testing.T, pid int) []*net.TCPAddr {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []*net.TCPAddr
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" || !inodes[fs[9]] {
				continue
			}
			a, err := parseProcAddr(fs[1])
			require.NoError(t, err)
			out = append(out, a)
		}
	}
	return out
}

// parseProcAddr decodes "0100007F:1F90" (IPv4) or a 32-digit IPv6 form: each 32-bit word
// is in host (little-endian) byte order.
func parseProcAddr(s string) (*net.TCPAddr, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("parse %q: no port", s)
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil, fmt.Errorf("parse %q: bad address", s)
	}
	ip := make(net.IP, len(raw))
	for w := 0; w < len(raw); w += 4 {
		for i := range 4 {
			ip[w+i] = raw[w+3-i]
		}
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", s, err)
	}
	return &net.TCPAddr{IP: ip, Port: int(port)}, nil
}

func addrStrings(as []*net.TCPAddr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func TestParseProcAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0100007F:1F90", "127.0.0.1:8080"},
		{"00000000:0050", "0.0.0.0:80"},
		{"00000000000000000000000001000000:1F90", "[::1]:8080"},
	}
	for _, tt := range tests {
		got, err := parseProcAddr(tt.in)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got.String())
	}
}

// BenchmarkSystemStartup starts the full default system from a warm data directory and
// measures start → every process ready; the target is a median of at most 1 s on 2 cores.
func BenchmarkSystemStartup(b *testing.B) {
	dir := b.TempDir()
	spec := testSpec(b, dir)
	once := func() time.Duration {
		rt := local.New()
		defer func() { _ = rt.Close(context.Background()) }()
		began := time.Now()
		sys, err := system.Start(context.Background(), rt, spec)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(began)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sys.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		return d
	}
	once() // warm-up: creates the databases, the stream and the etcd member
	var ds []time.Duration
	b.ResetTimer()
	for range b.N {
		ds = append(ds, once())
	}
	b.StopTimer()
	b.ReportMetric(float64(system.Percentile(ds, 50).Milliseconds()), "median-ms")
	b.ReportMetric(float64(system.Percentile(ds, 90).Milliseconds()), "p90-ms")
}
