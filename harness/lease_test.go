package harness_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime/kubernetes"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/undo"
)

// leasedPair is the pair holding a lease on what it runs, as a Kubernetes runtime does
// (kubernetes.Runtime.LeaseLost): lost is closed when the lease is lost.
type leasedPair struct {
	*pair
	lost chan struct{}
}

func (p *leasedPair) LeaseLost() <-chan struct{} { return p.lost }

// A run whose runtime or system loses its lease stops at once with verdict error and
// reason "run lease lost", heals, and stops the system: its reaper may be deleting the
// system under it.
func TestRunStopsWhenItsLeaseIsLost(t *testing.T) {
	t.Setenv(undo.DirEnv, t.TempDir())
	p := &leasedPair{pair: newPair(t), lost: make(chan struct{})}
	const planned = 30 * time.Second
	sc, err := scenarios.Parse("leased.yaml", []byte(fmt.Sprintf(`name: leased
description: A run whose lease is lost two seconds into a thirty-second load.
seed: 5
load:
  rate: 20/s
  duration: %s
  timeout: 3s
  mix: {call: 1}
  targets:
    - {name: call, url: "http://%s/call"}
faults:
  - name: slow-store
    type: latency
    target: front->store
    latency: 50ms
    at: 1s
    for: 20s
expect:
  overall:
    - {check: error_rate, name: no-errors, max: 1%%}
`, planned, p.frontAddr())))
	require.NoError(t, err)
	time.AfterFunc(2*time.Second, func() { close(p.lost) })
	began := time.Now()
	res, err := harness.Run(t.Context(), sc, harness.WithSystem(p), harness.WithDir(t.TempDir()))
	took := time.Since(began)
	t.Logf("lease lost 2 s in: the run ended after %s (load planned %s)", took.Round(time.Millisecond), planned)

	require.ErrorIs(t, err, kubernetes.ErrLeaseLost)
	assert.Equal(t, result.Error, res.Verdict)
	assert.Equal(t, "run lease lost", res.Reason)
	assert.NotEmpty(t, res.Hint)
	assert.Less(t, took, planned/2, "the run stopped when the lease was lost, not at the load's end")
	require.Len(t, res.Faults, 1)
	assert.NotZero(t, res.Faults[0].Healed, "the fault was healed")
	assert.False(t, p.running.Load(), "the system was stopped")
}

// A system kept up (StartSystem: a console) holding a lease passes its loss on through
// Up.LeaseLost, and WatchLease ends what keeps it up with kubernetes.ErrLeaseLost; one
// holding none is never ended by the watch.
func TestUpLeaseLost(t *testing.T) {
	t.Setenv(undo.DirEnv, t.TempDir())
	p := &leasedPair{pair: newPair(t), lost: make(chan struct{})}
	up, err := harness.StartSystem(t.Context(), p, "leased", harness.WithDir(filepath.Join(t.TempDir(), "system")))
	require.NoError(t, err)
	defer up.Close(context.WithoutCancel(t.Context()))

	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	stop := harness.WatchLease(ctx, cancel, slog.New(slog.DiscardHandler), up)
	defer stop()
	// Nothing holding a lease is ignored, not waited on.
	plain := harness.WatchLease(ctx, cancel, slog.New(slog.DiscardHandler), newPair(t), nil)
	defer plain()
	select {
	case <-ctx.Done():
		t.Fatalf("ended before the lease was lost: %v", context.Cause(ctx))
	case <-time.After(200 * time.Millisecond):
	}
	close(p.lost)
	select {
	case <-ctx.Done():
		require.ErrorIs(t, context.Cause(ctx), kubernetes.ErrLeaseLost)
	case <-time.After(2 * time.Second):
		t.Fatal("not ended 2 s after the lease was lost")
	}
}
