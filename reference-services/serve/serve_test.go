package serve_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/serve"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestMainRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  *config.Component
		want string
	}{
		{"missing file", nil, "read config"},
		{"invalid config", &config.Component{Kind: "mainframe", Name: "x"}, `kind "mainframe" is unknown`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".json")
			if tt.cfg != nil {
				require.NoError(t, tt.cfg.Save(path))
			}
			err := serve.Main(t.Context(), path)
			require.Error(t, err)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestMainServesRegistryUntilCancelled(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Component{
		Kind: config.KindRegistry, Name: "registry-1", Service: "registry",
		Listen: freeAddr(t), Admin: freeAddr(t), Peer: freeAddr(t),
		DataDir: filepath.Join(dir, "data"), LeaseTTL: config.Duration(2 * time.Second),
	}
	path := filepath.Join(dir, "registry-1.json")
	require.NoError(t, cfg.Save(path))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve.Main(ctx, path) }()

	// The admin server answers before the component is ready ("init" pending), then 200.
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + cfg.Admin + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "a cancelled component exits cleanly")
	case <-time.After(30 * time.Second):
		t.Fatal("Main did not return after cancellation")
	}
}
