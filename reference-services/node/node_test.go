package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/config"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestAdminServesHealthReadinessAndMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := New(config.Component{Kind: config.KindOrder, Name: "order-1", Service: "order", Admin: "127.0.0.1:0"}, nil)
	n.Pending("db", "opening")
	n.Pending("registry", "not registered")
	require.NoError(t, n.StartAdmin(ctx))
	base := "http://" + n.AdminAddr()

	code, _ := get(t, base+"/healthz")
	assert.Equal(t, http.StatusOK, code, "alive even while not ready")

	code, body := get(t, base+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	var got struct{ Waiting []string }
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	assert.Equal(t, []string{"db: opening", "registry: not registered"}, got.Waiting)

	n.Ready("db")
	assert.False(t, n.IsReady())
	n.Ready("registry")
	assert.True(t, n.IsReady())
	code, _ = get(t, base+"/readyz")
	assert.Equal(t, http.StatusOK, code)

	code, body = get(t, base+"/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `faultline_component_info{kind="order",name="order-1",service="order"} 1`)
	assert.Contains(t, body, "go_goroutines")
}

func TestListenRefusesNonLoopback(t *testing.T) {
	t.Setenv("FAULTLINE_BIND_ANY", "")
	for _, tc := range []struct {
		addr    string
		wantErr string
	}{
		{"127.0.0.1:0", ""},
		{"localhost:0", ""},
		{"[::1]:0", ""},
		{"0.0.0.0:0", "refusing a non-loopback address"},
		{":0", "refusing a non-loopback address"},
		{"10.1.2.3:0", "refusing a non-loopback address"},
		{"nonsense", "parse address"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			ln, err := Listen(tc.addr)
			if tc.wantErr == "" {
				if err != nil && strings.Contains(err.Error(), "cannot assign") {
					t.Skipf("no %s on this machine", tc.addr)
				}
				require.NoError(t, err)
				ln.Close()
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestAllowedHostInsideAContainerNetwork(t *testing.T) {
	t.Setenv("FAULTLINE_BIND_ANY", "1")
	assert.True(t, AllowedHost("0.0.0.0"), "a container's own network is the boundary")
}

// TestReadyzWaitAnswersWhenReady: /readyz?wait=D holds a 503 back until the component is
// ready, so a starter learns of readiness the moment the last condition is met, without
// polling; the wait ends with 503 when D passes first, and a bad D is a 400. The order of
// events is asserted, not their timing: the answer cannot be 200 before Ready was called.
func TestReadyzWaitAnswersWhenReady(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := New(config.Component{Kind: config.KindOrder, Name: "order-1", Service: "order", Admin: "127.0.0.1:0"}, nil)
	n.Pending("db", "opening")
	n.Pending("registry", "not registered")
	require.NoError(t, n.StartAdmin(ctx))
	base := "http://" + n.AdminAddr()

	code, body := get(t, base+"/readyz?wait=20ms")
	assert.Equal(t, http.StatusServiceUnavailable, code, "not ready within the wait: 503")
	assert.Contains(t, body, "registry: not registered")

	code, _ = get(t, base+"/readyz?wait=soon")
	assert.Equal(t, http.StatusBadRequest, code)

	type answer struct {
		code int
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get(base + "/readyz?wait=10s")
		if err != nil {
			got <- answer{err: err}
			return
		}
		_ = resp.Body.Close()
		got <- answer{code: resp.StatusCode}
	}()
	n.Ready("db")
	select {
	case a := <-got:
		t.Fatalf("answered %d (%v) while registry was still pending", a.code, a.err)
	case <-time.After(50 * time.Millisecond):
	}
	n.Ready("registry")
	a := <-got
	require.NoError(t, a.err)
	assert.Equal(t, http.StatusOK, a.code, "the held request answers 200 once ready")
}
