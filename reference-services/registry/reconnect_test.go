package registry

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestClientDialsAgainWithinASecondOfTheRegistryComingUp: a client whose registry has been
// away for several seconds (a container system's dependents start before the registry
// listens; a crash fault keeps it down) dials again at most a second apart, so it is
// usable within about a second of the registry being back. With gRPC's own reconnect
// backoff (1 s, growing 1.6× to two minutes) the attempt after a 6 s outage comes 3 s or
// more after the registry is back.
func TestClientDialsAgainWithinASecondOfTheRegistryComingUp(t *testing.T) {
	n := startEtcd(t)
	c := connect(t, n.client, nil)
	get := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		_, err := c.Etcd().Get(ctx, "k")
		return err
	}
	require.NoError(t, get(5*time.Second))
	n.stop()
	// Fail while it is away, so the client's backoff grows as far as it will.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		_ = get(200 * time.Millisecond)
		time.Sleep(100 * time.Millisecond)
	}
	n.start(t)
	back := time.Now()
	require.Eventually(t, func() bool { return get(100*time.Millisecond) == nil }, 10*time.Second, 20*time.Millisecond)
	took := time.Since(back)
	t.Logf("usable %s after the registry was back", took.Round(time.Millisecond))
	require.Less(t, took, 2*time.Second, "the client dials again at most a second (+20%% jitter) apart")
}
