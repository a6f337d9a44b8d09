package loadgen_test

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/reference"
)

// shopSpec is a load both fake gateways answer with success wherever a request lands:
// browsing and fresh placements (an order read back would need the gateway that took it).
func shopSpec(t *testing.T, seed int64, rate string, d time.Duration) loadgen.Spec {
	spec := refSpec(t, seed, rate, d)
	spec.Mix = map[string]int{reference.JourneyBrowse: 3, reference.JourneyPlaceOrder: 1}
	return spec
}

// planned counts the scheduled requests a fake gateway saw (probes carry no sequence).
func planned(g *gateway) int {
	n := 0
	for _, r := range g.requests() {
		if r.Seq != "" {
			n++
		}
	}
	return n
}

// collectTargets is collect for RunTargets.
func collectTargets(t *testing.T, spec loadgen.Spec, targets []string, each func(loadgen.Result), opts ...loadgen.Option) ([]loadgen.Result, loadgen.Summary) {
	t.Helper()
	var mu sync.Mutex
	var got []loadgen.Result
	sum, err := loadgen.RunTargets(context.Background(), spec, targets, func(r loadgen.Result) {
		if each != nil {
			each(r)
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
	}, opts...)
	require.NoError(t, err)
	slices.SortFunc(got, func(a, b loadgen.Result) int { return int(a.Seq) - int(b.Seq) })
	return got, sum
}

func TestRunTargetsRejectsBadTargets(t *testing.T) {
	tests := []struct {
		name    string
		targets []string
		want    string
	}{
		{"none", nil, "parse target: no target"},
		{"one bad of two", []string{"http://127.0.0.1:1", "ftp://127.0.0.1:2"}, `"ftp://127.0.0.1:2" is not an http(s) base URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadgen.RunTargets(context.Background(), refSpec(t, 1, "10/s", time.Second), tt.targets, nil)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestRunTargetsSendsEachClientToItsHome(t *testing.T) {
	a, b := newNamedGateway("gw-a"), newNamedGateway("gw-b")
	targets := []string{serve(t, a), serve(t, b)}
	results, sum := collectTargets(t, shopSpec(t, 4, "200/s", time.Second), targets, nil)
	require.Len(t, results, 200)
	served := map[string]int{}
	for _, r := range results {
		require.True(t, r.OK, "request %d answered %d %s", r.Seq, r.Status, r.Error)
		home := r.Client % 2
		assert.Equal(t, targets[home], r.Target, "request %d of client %d", r.Seq, r.Client)
		assert.Equal(t, []string{"gw-a", "gw-b"}[home], r.ServedBy)
		served[r.ServedBy]++
	}
	assert.Positive(t, served["gw-a"])
	assert.Positive(t, served["gw-b"])
	assert.Equal(t, served["gw-a"], planned(a), "gw-a saw what the results say it served")
	assert.Equal(t, served["gw-b"], planned(b))
	assert.Equal(t, uint64(200), sum.Issued)
}

func TestClientsFailOverWhenATargetCloses(t *testing.T) {
	const clients, backoff = 4, 300 * time.Millisecond
	a, b := newNamedGateway("gw-a"), newNamedGateway("gw-b")
	srvA := start(t, a, "127.0.0.1:0")
	targets := []string{srvA.URL, serve(t, b)}
	spec := shopSpec(t, 21, "100/s", 3*time.Second)
	require.Equal(t, clients, spec.Clients)

	var seen atomic.Int64
	var closeOnce sync.Once
	closed := make(chan struct{})
	results, sum := collectTargets(t, spec, targets, func(loadgen.Result) {
		if seen.Add(1) == 80 { // about 0.8 s into the load
			closeOnce.Do(func() { go func() { srvA.Close(); close(closed) }() })
		}
	}, loadgen.WithBackoff(backoff, 2*backoff))
	<-closed
	require.Len(t, results, 300, "every planned request was sent")
	assert.Equal(t, uint64(300), sum.Issued)

	firstFailEnd := map[int]time.Duration{} // client -> end of its first failed request
	failures := 0
	for _, r := range results {
		if r.OK {
			continue
		}
		failures++
		assert.Equal(t, targets[0], r.Target, "request %d failed at the target that closed", r.Seq)
		assert.Zero(t, r.Status, "request %d: %s", r.Seq, r.Error)
		assert.Contains(t, []string{"refused", "reset", "eof"}, loadgen.ErrorClass(r.Error), "request %d: %s", r.Seq, r.Error)
		if _, ok := firstFailEnd[r.Client]; !ok {
			firstFailEnd[r.Client] = r.End()
		}
	}
	assert.LessOrEqual(t, failures, clients*3, "failures are bounded by the clients, not the rate")
	// Clients 0 and 2 live at the closed target: each met the closure once, then moved.
	assert.Equal(t, []int{0, 2}, slices.Sorted(maps.Keys(firstFailEnd)))
	moved := 0
	for _, r := range results {
		end, ok := firstFailEnd[r.Client]
		if !ok || r.Start <= end {
			continue
		}
		// Sent after the client saw the failure: to the live target, and answered.
		assert.Equal(t, targets[1], r.Target, "request %d of client %d", r.Seq, r.Client)
		assert.True(t, r.OK, "request %d of client %d: %d %s", r.Seq, r.Client, r.Status, r.Error)
		assert.Equal(t, "gw-b", r.ServedBy)
		moved++
	}
	assert.Greater(t, moved, 50, "the clients of the closed target carried on at the other")

	// The schedule is the one a healthy single target gets: failover is a send-time choice.
	healthy, _ := collect(t, spec, serve(t, newGateway()))
	assert.Equal(t, scheduleOf(healthy), scheduleOf(results))
}

func TestClientsReturnWhenATargetAnswersAgain(t *testing.T) {
	const backoff = 100 * time.Millisecond
	a, b := newNamedGateway("gw-a"), newNamedGateway("gw-b")
	srvA := start(t, a, "127.0.0.1:0")
	addrA := srvA.Listener.Addr().String()
	targets := []string{srvA.URL, serve(t, b)}

	var phase atomic.Int32 // 0 up, 1 closed, 2 reopened
	var movedAway, cameBack atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var results []loadgen.Result // written by the sink, read once Run has returned
	done := make(chan error, 1)
	go func() {
		_, err := loadgen.RunTargets(ctx, shopSpec(t, 8, "100/s", time.Minute), targets, func(r loadgen.Result) {
			results = append(results, r)
			if r.Client%2 != 0 || !r.OK {
				return
			}
			switch {
			case phase.Load() == 1 && r.Target == targets[1]:
				movedAway.Store(true)
			case phase.Load() == 2 && r.Target == targets[0] && r.ServedBy == "gw-a2":
				cameBack.Store(true)
			}
		}, loadgen.WithBackoff(backoff, 2*backoff))
		done <- err
	}()
	require.Eventually(t, func() bool { return planned(a) > 20 }, 30*time.Second, 10*time.Millisecond)
	phase.Store(1)
	srvA.Close()
	require.Eventually(t, movedAway.Load, 30*time.Second, 10*time.Millisecond, "clients of the closed target move to the other")
	start(t, newNamedGateway("gw-a2"), addrA)
	phase.Store(2)
	require.Eventually(t, cameBack.Load, 30*time.Second, 10*time.Millisecond, "a probe brings the target back")
	cancel()
	var err error
	require.Eventually(t, func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	}, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, err)
	failures := 0
	for _, r := range results {
		if !r.OK && loadgen.ErrorClass(r.Error) != "canceled" {
			failures++
		}
	}
	// Probes, not users' requests, find out whether the closed target is back.
	assert.LessOrEqual(t, failures, 2*3, "failed requests of the two clients at the closed target")
}
