package wait_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/system/wait"
)

// readyAfter serves 503 for the first n requests and 200 afterwards.
func readyAfter(t *testing.T, n int64) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= n {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestHTTPWaitsForStatus(t *testing.T) {
	srv, calls := readyAfter(t, 3)
	require.NoError(t, wait.HTTP(srv.URL, 200).WithTimeout(10*time.Second).Wait(t.Context()))
	assert.Equal(t, int64(4), calls.Load())
}

func TestHTTPTimesOutWithLastReason(t *testing.T) {
	srv, _ := readyAfter(t, 1<<40)
	err := wait.HTTP(srv.URL, 200).WithTimeout(150 * time.Millisecond).Wait(t.Context())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "status 503, want 200")
}

func TestAllFailsFastOnFirstFailure(t *testing.T) {
	never, _ := readyAfter(t, 1<<40)
	boom := errors.New("boom")
	start := time.Now()
	err := wait.All(
		wait.HTTP(never.URL, 200),
		wait.Func(func(context.Context) (bool, error) { return false, wait.Permanent(boom) }),
	).Wait(t.Context())
	require.ErrorIs(t, err, boom)
	assert.Less(t, time.Since(start), 30*time.Second, "All must not wait for the hopeless strategy")
}

func TestAllWaitsForEvery(t *testing.T) {
	a, ca := readyAfter(t, 2)
	b, cb := readyAfter(t, 5)
	require.NoError(t, wait.WithTimeout(wait.All(wait.HTTP(a.URL, 200), wait.HTTP(b.URL, 200)), 10*time.Second).Wait(t.Context()))
	assert.Equal(t, int64(3), ca.Load())
	assert.Equal(t, int64(6), cb.Load())
}

func TestWhileRunningFailsWhenProcessExits(t *testing.T) {
	rt := local.New()
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	p, err := rt.Start(t.Context(), runtime.Spec{Name: "crasher", Command: "/bin/sh", Args: []string{"-c", "exit 3"}})
	require.NoError(t, err)
	never, _ := readyAfter(t, 1<<40)
	err = wait.WhileRunning(p, wait.HTTP(never.URL, 200)).Wait(t.Context())
	require.Error(t, err)
	assert.ErrorContains(t, err, "exit status 3")
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, wait.WithTimeout(wait.TCP(addr), 5*time.Second).Wait(t.Context()))
	require.NoError(t, ln.Close())
	require.Error(t, wait.WithTimeout(wait.TCP(addr), 100*time.Millisecond).Wait(t.Context()))
}
