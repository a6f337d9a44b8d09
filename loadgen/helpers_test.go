package loadgen_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/node"
)

// serve starts h on a loopback port and returns its base URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	return start(t, h, "127.0.0.1:0").URL
}

// start serves h on addr (a loopback address; port 0 picks one) until the test ends or
// the caller closes the server.
func start(t *testing.T, h http.Handler, addr string) *httptest.Server {
	t.Helper()
	ln, err := node.Listen(addr)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// received is one request as a server saw it.
type received struct {
	Seq    string
	Method string
	Path   string
	Key    string
	Auth   string
	Body   string
}

// gateway imitates the reference gateway closely enough for the generator: it places
// orders idempotently by key, serves them back, and lists products.
type gateway struct {
	name   string // X-Served-By
	mu     sync.Mutex
	seen   []received
	orders map[string]string // idempotency key -> order id
	bodies map[string]string // idempotency key -> first body
	ids    map[string]string // order id -> the Authorization that placed it: orders are their owner's
}

func newGateway() *gateway { return newNamedGateway("gw-1") }

func newNamedGateway(name string) *gateway {
	return &gateway{name: name, orders: map[string]string{}, bodies: map[string]string{}, ids: map[string]string{}}
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, received{
		Seq: r.Header.Get("X-Faultline-Seq"), Method: r.Method, Path: r.URL.Path,
		Key: r.Header.Get("Idempotency-Key"), Auth: r.Header.Get("Authorization"), Body: string(body),
	})
	w.Header().Set("X-Served-By", g.name)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/orders":
		key := r.Header.Get("Idempotency-Key") // keys are scoped per client, as the reference gateway's
		if id, ok := g.orders[key]; ok && g.ids[id] == r.Header.Get("Authorization") {
			w.Header().Set("Idempotent-Replayed", "true")
			writeJSON(w, http.StatusOK, map[string]string{"id": id})
			return
		}
		var req struct {
			MerchantID string `json:"merchant_id"`
			ProductID  string `json:"product_id"`
			Quantity   int    `json:"quantity"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Quantity < 1 || req.ProductID == "" || req.MerchantID == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad order"})
			return
		}
		id := fmt.Sprintf("o-%d", len(g.orders)+1)
		g.orders[key], g.bodies[key], g.ids[id] = id, string(body), r.Header.Get("Authorization")
		writeJSON(w, http.StatusCreated, map[string]string{"id": id, "status": "accepted"})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/orders/"):
		id := strings.TrimPrefix(r.URL.Path, "/orders/")
		if owner, ok := g.ids[id]; !ok || owner != r.Header.Get("Authorization") {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such order"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"id": id})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/products"):
		writeJSON(w, http.StatusOK, map[string]string{"ok": "yes"})
	default:
		http.NotFound(w, r)
	}
}

func (g *gateway) requests() []received {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]received(nil), g.seen...)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
