package gateway_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/auth"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/design"
	"github.com/faultline-dev/faultline/reference-services/gateway"
	"github.com/faultline-dev/faultline/reference-services/merchant"
	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/order"
	"github.com/faultline-dev/faultline/reference-services/product"
	"github.com/faultline-dev/faultline/reference-services/store"
)

// TestSecurityTable is the gateway's security contract in one place: every hostile or
// broken request, the status it gets, and that the answer is a JSON error with a request
// id and nothing internal in it.
func TestSecurityTable(t *testing.T) {
	signed := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		require.NoError(t, err)
		return s
	}
	now := time.Now()
	valid := jwt.MapClaims{"iss": issuer, "aud": audience, "sub": "mallory", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range valid {
			c[kk] = vv
		}
		c[k] = v
		return c
	}
	other, err := auth.Issue([]byte("another-secret-another-secret-ab"), issuer, audience, "mallory", time.Hour)
	require.NoError(t, err)
	none := signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid)

	type row struct {
		name   string
		method string
		path   string
		body   string
		auth   string // full Authorization header; "" sends none
		want   int
	}
	bearer := func(s string) string { return "Bearer " + s }
	rows := []row{
		{"no token", "GET", "/products", "", "", http.StatusUnauthorized},
		{"not a bearer scheme", "GET", "/products", "", "Basic YWxpY2U6cHc=", http.StatusUnauthorized},
		{"malformed token", "GET", "/products", "", bearer("not.a.jwt"), http.StatusUnauthorized},
		{"alg none", "GET", "/products", "", bearer(none), http.StatusUnauthorized},
		{"HS512 instead of HS256", "GET", "/products", "", bearer(signed(jwt.SigningMethodHS512, secret, valid)), http.StatusUnauthorized},
		{"signed with another secret", "GET", "/products", "", bearer(other), http.StatusUnauthorized},
		{"expired", "GET", "/products", "", bearer(signed(jwt.SigningMethodHS256, secret, with("exp", now.Add(-time.Minute).Unix()))), http.StatusUnauthorized},
		{"not yet valid", "GET", "/products", "", bearer(signed(jwt.SigningMethodHS256, secret, with("nbf", now.Add(time.Hour).Unix()))), http.StatusUnauthorized},
		{"wrong issuer", "GET", "/products", "", bearer(signed(jwt.SigningMethodHS256, secret, with("iss", "evil"))), http.StatusUnauthorized},
		{"wrong audience", "GET", "/products", "", bearer(signed(jwt.SigningMethodHS256, secret, with("aud", "other-api"))), http.StatusUnauthorized},
		{"oversized body", "POST", "/orders", `{"merchant_id":"` + strings.Repeat("m", 4096) + `"}`, "", http.StatusRequestEntityTooLarge},
		{"unknown route", "GET", "/admin/secrets", "", "", http.StatusNotFound},
		// Anything not routed is a plain 404, so probing with other methods does not reveal
		// which paths exist.
		{"wrong method on a known route", "DELETE", "/orders/o-1", "", "", http.StatusNotFound},
		{"placement without an idempotency key", "POST", "/orders", `{"merchant_id":"m-01","product_id":"p-001","quantity":1}`, "", http.StatusBadRequest},
		{"internal failure does not leak", "GET", "/products/p-001", "", "", http.StatusBadGateway},
	}
	f := newFixture(t, gateway.WithLimits(design.GatewayLimits{MaxBodyBytes: 1024, ClientRPS: 0.001, ClientBurst: 1000}))
	f.products.EXPECT().GetProduct(mock.Anything, mock.Anything).
		Return(nil, status.Error(codes.Internal, "sqlite: disk I/O error at /var/lib/faultline/product.db")).Maybe()
	alice := bearer(token(t, "alice"))
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
			switch {
			case r.auth != "":
				req.Header.Set("Authorization", r.auth)
			case r.want != http.StatusUnauthorized:
				req.Header.Set("Authorization", alice)
			}
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			assert.Equal(t, r.want, rec.Code, rec.Body.String())
			body := rec.Body.String()
			for _, leak := range []string{"sqlite", "/var/lib", "goroutine", "panic", "rpc error"} {
				assert.NotContains(t, body, leak, "internal detail leaked")
			}
			if r.want >= 400 {
				v := decode(t, rec)
				assert.NotEmpty(t, v["error"], "a JSON error a client can show")
				assert.NotEmpty(t, v["request_id"], "a request id to find the log line")
			}
		})
	}

	t.Run("flood from one client", func(t *testing.T) {
		f := newFixture(t, gateway.WithLimits(design.GatewayLimits{ClientRPS: 0.001, ClientBurst: 5}))
		f.products.EXPECT().ListProducts(mock.Anything, mock.Anything).Return(&refv1.ListProductsResponse{}, nil).Times(6)
		var got []int
		for range 20 {
			got = append(got, f.do(t, http.MethodGet, "/products", "", nil).Code)
		}
		want := []int{200, 200, 200, 200, 200}
		for range 15 {
			want = append(want, http.StatusTooManyRequests)
		}
		assert.Equal(t, want, got, "the burst is served, the rest is refused, nothing queues")
		rec := f.do(t, http.MethodGet, "/products", "", nil)
		assert.NotEmpty(t, rec.Header().Get("Retry-After"))
		other := f.do(t, http.MethodGet, "/products", "", map[string]string{"Authorization": "Bearer " + token(t, "bob")})
		assert.Equal(t, http.StatusOK, other.Code, "one client's flood does not lock out another")
	})
}

// live is a gateway in front of real merchant, product and order services (SQLite
// databases, gRPC on loopback), served over HTTP on loopback the way Run serves it.
type live struct {
	url     string
	orderDB *sql.DB
	http    *http.Client
	active  atomic.Int64 // requests the server started reading (connections turned active)
}

var liveCatalog = config.Catalog{Merchants: 2, Products: 4, InitialStock: 1000}

func startLive(t *testing.T, limits design.GatewayLimits, opts ...gateway.Option) *live {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	open := func(name string) *sql.DB {
		db, err := store.Open(ctx, filepath.Join(dir, name))
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	serve := func(register func(*grpc.Server)) *grpc.ClientConn {
		ln, err := node.Listen("127.0.0.1:0")
		require.NoError(t, err)
		s := grpc.NewServer()
		register(s)
		go func() { _ = s.Serve(ln) }()
		t.Cleanup(s.Stop)
		cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = cc.Close() })
		return cc
	}
	mdb, pdb, odb := open("merchant.db"), open("product.db"), open("order.db")
	require.NoError(t, merchant.Prepare(ctx, mdb, liveCatalog))
	require.NoError(t, product.Prepare(ctx, pdb, liveCatalog))
	require.NoError(t, order.Prepare(ctx, odb))
	mcc := serve(func(s *grpc.Server) { refv1.RegisterMerchantServiceServer(s, merchant.NewServer(mdb)) })
	pcc := serve(func(s *grpc.Server) { refv1.RegisterProductServiceServer(s, product.NewServer(pdb, nil)) })
	merchants, products := refv1.NewMerchantServiceClient(mcc), refv1.NewProductServiceClient(pcc)
	osrv, err := order.NewServer(odb, merchants, products)
	require.NoError(t, err)
	occ := serve(func(s *grpc.Server) { refv1.RegisterOrderServiceServer(s, osrv) })

	h, err := gateway.NewHandler(gateway.Deps{
		Merchants: merchants, Products: products, Orders: refv1.NewOrderServiceClient(occ),
		Verifier: auth.NewVerifier(secret, issuer, audience),
	}, append([]gateway.Option{gateway.WithLimits(limits)}, opts...)...)
	require.NoError(t, err)
	l := &live{orderDB: odb, http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	srv := gateway.NewServer(h)
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateActive {
			l.active.Add(1)
		}
	}
	ln, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	l.url = "http://" + ln.Addr().String()
	return l
}

// call sends one request as subject and returns the status and the decoded JSON body.
func (l *live) call(t *testing.T, subject, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, l.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t, subject))
	if key != "" {
		req.Header.Set(gateway.HeaderIdempotencyKey, key)
	}
	resp, err := l.http.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal(raw, &v), "a JSON body: %s", raw)
	return resp.StatusCode, v
}

func (l *live) orders(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, l.orderDB.QueryRow(`SELECT COUNT(*) FROM orders`).Scan(&n))
	return n
}

func orderBody(i int, qty int) string {
	return fmt.Sprintf(`{"merchant_id":%q,"product_id":%q,"quantity":%d}`, liveCatalog.ProductMerchant(i), config.ProductID(i), qty)
}

// Fifty concurrent placements with one key and one body: exactly one order, and every
// caller is answered with that order.
func TestIdempotencyKeyConcurrentPlacementsOneOrder(t *testing.T) {
	l := startLive(t, design.Default().Gateway)
	const n = 50
	codes := make([]int, n)
	ids := make([]any, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			var v map[string]any
			codes[i], v = l.call(t, "alice", http.MethodPost, "/orders", "k-concurrent", orderBody(0, 1))
			ids[i] = v["id"]
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range n {
		require.Contains(t, []int{http.StatusCreated, http.StatusOK}, codes[i])
		assert.Equal(t, ids[0], ids[i], "every caller gets the one order")
		if codes[i] == http.StatusCreated {
			created++
		}
	}
	assert.Equal(t, 1, created)
	assert.Equal(t, 1, l.orders(t))
}

// A key reused with another body is an error (422, JSON), not a replay of the first order:
// the client has a bug, and answering the first order would hide that its request was
// never placed.
func TestIdempotencyKeyReusedWithAnotherBody(t *testing.T) {
	l := startLive(t, design.Default().Gateway)
	code, first := l.call(t, "alice", http.MethodPost, "/orders", "k-1", orderBody(0, 1))
	require.Equal(t, http.StatusCreated, code, first)
	tests := []struct {
		name string
		body string
		want int
	}{
		{"same body", orderBody(0, 1), http.StatusOK},
		{"another quantity", orderBody(0, 2), http.StatusUnprocessableEntity},
		{"another product", orderBody(2, 1), http.StatusUnprocessableEntity},
		{"same fields, other bytes", `{"quantity":1,"merchant_id":"m-01","product_id":"p-001"}`, http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, v := l.call(t, "alice", http.MethodPost, "/orders", "k-1", tt.body)
			require.Equal(t, tt.want, code, v)
			if tt.want == http.StatusOK {
				assert.Equal(t, first["id"], v["id"])
				return
			}
			assert.NotEmpty(t, v["error"], "a JSON error a client can show")
			assert.NotEmpty(t, v["request_id"])
			assert.Nil(t, v["id"], "the first order is not disclosed as if it were this request's")
		})
	}
	assert.Equal(t, 1, l.orders(t))
}

// Keys belong to their subject: another client that happens to pick the same key gets its
// own order, never the first client's.
func TestIdempotencyKeyScopedPerSubject(t *testing.T) {
	l := startLive(t, design.Default().Gateway)
	code, alice := l.call(t, "alice", http.MethodPost, "/orders", "k-shared", orderBody(0, 1))
	require.Equal(t, http.StatusCreated, code, alice)
	code, bob := l.call(t, "bob", http.MethodPost, "/orders", "k-shared", orderBody(0, 1))
	require.Equal(t, http.StatusCreated, code, bob)
	assert.NotEqual(t, alice["id"], bob["id"])
	code, again := l.call(t, "bob", http.MethodPost, "/orders", "k-shared", orderBody(0, 1))
	require.Equal(t, http.StatusOK, code, again)
	assert.Equal(t, bob["id"], again["id"], "bob's retry replays bob's order")
	assert.Equal(t, 2, l.orders(t))
}

// An order is visible to the subject that placed it only; anyone else gets the same 404 as
// for an id that does not exist, so that probing ids reveals nothing.
func TestOrderVisibleToOwnerOnly(t *testing.T) {
	l := startLive(t, design.Default().Gateway)
	code, placed := l.call(t, "alice", http.MethodPost, "/orders", "k-1", orderBody(0, 1))
	require.Equal(t, http.StatusCreated, code, placed)
	id := placed["id"].(string)

	code, page := l.call(t, "alice", http.MethodGet, "/orders/"+id, "", "")
	require.Equal(t, http.StatusOK, code, page)
	assert.Equal(t, id, page["order"].(map[string]any)["id"])

	code, other := l.call(t, "bob", http.MethodGet, "/orders/"+id, "", "")
	assert.Equal(t, http.StatusNotFound, code, other)
	_, missing := l.call(t, "bob", http.MethodGet, "/orders/01J00000000000000000000000", "", "")
	assert.Equal(t, missing["error"], other["error"], "indistinguishable from an unknown id")
	assert.Nil(t, other["order"])
}

// One client opens 260 connections that each announce a 200-byte order and send "{": more
// than the default 256 in-flight slots. Another client's reads must go on: at least 99 %
// succeed while the slow bodies are held.
func TestSlowBodiesDoNotStarveOtherClients(t *testing.T) {
	l := startLive(t, design.Default().Gateway)
	const slow = 260
	mallory := token(t, "mallory")
	addr := strings.TrimPrefix(l.url, "http://")
	conns := make([]net.Conn, 0, slow)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for i := range slow {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		conns = append(conns, c)
		_, err = fmt.Fprintf(c, "POST /orders HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nIdempotency-Key: slow-%d\r\n"+
			"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{", mallory, i)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return l.active.Load() >= slow }, 10*time.Second, 5*time.Millisecond,
		"the gateway reads every slow request")

	// 400 reads, well within the client's rate limit burst: only the slow bodies can fail them.
	var ok, total atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				req, _ := http.NewRequest(http.MethodGet, l.url+"/products/"+config.ProductID(1), nil)
				req.Header.Set("Authorization", "Bearer "+token(t, "bob"))
				resp, err := l.http.Do(req)
				total.Add(1)
				if err != nil {
					t.Log(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	rate := float64(ok.Load()) / float64(total.Load())
	t.Logf("other client's reads while %d slow bodies are held: %d of %d succeeded (%.1f %%)", slow, ok.Load(), total.Load(), 100*rate)
	assert.GreaterOrEqual(t, rate, 0.99)
	assert.Equal(t, slow-gateway.DefaultMaxBodiesPerClient, refused(t, conns, http.StatusTooManyRequests),
		"beyond its cap, the slow client is refused at once")
}

// refused counts the connections that have already been answered with code (the others
// are still being read from).
func refused(t *testing.T, conns []net.Conn, code int) int {
	t.Helper()
	n := 0
	for _, c := range conns {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode == code {
			n++
		}
	}
	return n
}

// slowPost opens a connection that announces a 200-byte order and sends only "{".
func slowPost(t *testing.T, addr, authz string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	if authz != "" {
		authz = "Authorization: " + authz + "\r\n"
	}
	_, err = fmt.Fprintf(c, "POST /orders HTTP/1.1\r\nHost: gw\r\n%sIdempotency-Key: slow\r\n"+
		"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{", authz)
	require.NoError(t, err)
	return c
}

// A body that does not arrive within the body deadline is answered 408 and its connection
// closed; one client has at most its cap of bodies being read, whether it is known by its
// token's subject or, without a valid token, by its address; the excess is a 429 at once.
func TestSlowBodyLimits(t *testing.T) {
	const perClient = 4
	tests := []struct {
		name  string
		authz string
	}{
		{"authenticated client", "Bearer " + token(t, "mallory")},
		{"no token: the remote address", ""},
		{"forged token: the remote address", "Bearer " + token(t, "mallory") + "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := startLive(t, design.Default().Gateway, gateway.WithBodyLimits(400*time.Millisecond, perClient))
			addr := strings.TrimPrefix(l.url, "http://")
			var conns []net.Conn
			for range perClient + 3 {
				conns = append(conns, slowPost(t, addr, tt.authz))
			}
			require.Eventually(t, func() bool { return l.active.Load() >= perClient+3 }, 5*time.Second, 5*time.Millisecond)
			start := time.Now()
			assert.Equal(t, 3, refused(t, conns, http.StatusTooManyRequests))
			// The held ones time out: 408 within the deadline (and some scheduling slack).
			timedOut := 0
			for _, c := range conns {
				require.NoError(t, c.SetReadDeadline(time.Now().Add(3*time.Second)))
				if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
					_ = resp.Body.Close()
					assert.True(t, resp.Close, "the connection is closed")
					if resp.StatusCode == http.StatusRequestTimeout {
						timedOut++
					}
				}
			}
			assert.Equal(t, perClient, timedOut)
			assert.Less(t, time.Since(start), 2*time.Second)
			// The cap was released: the client can send a body again.
			c := slowPost(t, addr, tt.authz)
			_, err := c.Write([]byte(strings.Repeat(" ", 199)))
			require.NoError(t, err)
			require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.NotContains(t, []int{http.StatusTooManyRequests, http.StatusRequestTimeout}, resp.StatusCode)
		})
	}
}

// The body deadline covers the body only: a placement whose handling outlasts it (a slow
// order service) is neither cancelled nor cut off.
func TestBodyDeadlineEndsWithTheBody(t *testing.T) {
	f := newFixture(t, gateway.WithBodyLimits(200*time.Millisecond, 4))
	f.orders.EXPECT().PlaceOrder(mock.Anything, mock.Anything).RunAndReturn(
		func(ctx context.Context, _ *refv1.PlaceOrderRequest, _ ...grpc.CallOption) (*refv1.PlaceOrderResponse, error) {
			select {
			case <-ctx.Done():
				return nil, status.FromContextError(ctx.Err()).Err()
			case <-time.After(600 * time.Millisecond):
			}
			return &refv1.PlaceOrderResponse{Order: &refv1.Order{Id: "o-1"}}, nil
		}).Once()
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/orders", strings.NewReader(orderBody(0, 1)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t, "alice"))
	req.Header.Set(gateway.HeaderIdempotencyKey, "k-slow-upstream")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
}

// A body that cannot be read (a malformed chunk) is the client's error, 400, not a timeout.
func TestUnreadableBody(t *testing.T) {
	l := startLive(t, design.Default().Gateway)
	c, err := net.Dial("tcp", strings.TrimPrefix(l.url, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = fmt.Fprintf(c, "POST /orders HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nIdempotency-Key: k\r\n"+
		"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", token(t, "alice"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	var v map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	assert.Equal(t, "request body unreadable", v["error"])
	assert.Zero(t, l.orders(t))
}
