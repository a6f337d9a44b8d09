package wait_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/runtime/wait"
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
	p, err := rt.Start(t.Context(), runtime.Spec{Name: "crasher", Command: "/bin/sh",
		Args:    []string{"-c", "echo starting; echo 'listen tcp 127.0.0.1:1: bind: address already in use' >&2; exit 3"},
		LogFile: filepath.Join(t.TempDir(), "crasher.log")})
	require.NoError(t, err)
	never, _ := readyAfter(t, 1<<40)
	err = wait.WhileRunning(p, wait.HTTP(never.URL, 200)).Wait(t.Context())
	require.Error(t, err)
	assert.ErrorContains(t, err, "exit status 3")
	assert.ErrorContains(t, err, "last output: listen tcp 127.0.0.1:1: bind: address already in use",
		"the reason a component gave for dying is in the error")
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, wait.WithTimeout(wait.TCP(addr), 5*time.Second).Wait(t.Context()))
	require.NoError(t, ln.Close())
	require.Error(t, wait.WithTimeout(wait.TCP(addr), 100*time.Millisecond).Wait(t.Context()))
}

// TestCheckHTTPStatus: one attempt passes on the wanted status, or on any 2xx when none
// is wanted (a container's or a topology's readiness probe).
func TestCheckHTTPStatus(t *testing.T) {
	tests := []struct {
		answer, want int
		ok           bool
	}{
		{200, 0, true},
		{204, 0, true},
		{299, 0, true},
		{301, 0, false},
		{503, 0, false},
		{200, 200, true},
		{204, 200, false},
		{418, 418, true},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tt.answer) }))
		err := wait.CheckHTTP(t.Context(), nil, srv.URL, tt.want)
		srv.Close()
		assert.Equal(t, tt.ok, err == nil, "answer %d, want %d: %v", tt.answer, tt.want, err)
	}
}

// TestFuncEveryPollsAtItsOwnPace: a slower poll asks less often than the default.
func TestFuncEveryPollsAtItsOwnPace(t *testing.T) {
	var calls atomic.Int64
	f := wait.Func(func(context.Context) (bool, error) { return calls.Add(1) >= 3, nil })
	start := time.Now()
	require.NoError(t, f.Every(50*time.Millisecond).Wait(t.Context()))
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "three attempts, two waits")
	assert.Equal(t, int64(3), calls.Load())
}
