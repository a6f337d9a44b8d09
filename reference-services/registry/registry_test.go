package registry

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/reference-services/api/refv1"
)

// value reads a gauge or counter the way a scrape would.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Gauge != nil {
		return d.GetGauge().GetValue()
	}
	return d.GetCounter().GetValue()
}

var errInternal = status.Error(codes.Internal, "backend failure")

const (
	eventually = 15 * time.Second
	poll       = 20 * time.Millisecond
)

func names(insts []Instance) []string {
	out := []string{}
	for _, in := range insts {
		out = append(out, in.Name)
	}
	return out
}

func TestRegisterHeartbeatCrashAndCleanClose(t *testing.T) {
	et := startEtcd(t)
	ctx := context.Background()
	watchReg := prometheus.NewRegistry()
	w, err := connect(t, et.client, nil).Watch(ctx, "gateway", false, watchReg)
	require.NoError(t, err)
	require.True(t, w.Synced())

	const ttl = time.Second
	crashing := connect(t, et.client, nil)
	_, err = crashing.Register(ctx, Instance{Service: "product", Name: "product-1", Addr: "127.0.0.1:1001", Admin: "127.0.0.1:2001"}, ttl)
	require.NoError(t, err)
	cleanReg := prometheus.NewRegistry()
	clean := connect(t, et.client, cleanReg)
	r2, err := clean.Register(ctx, Instance{Service: "product", Name: "product-2", Addr: "127.0.0.1:1002"}, ttl)
	require.NoError(t, err)

	require.NoError(t, w.WaitFor(ctxTimeout(t, eventually), "product", 2))
	got := w.Instances("product")
	want := []Instance{
		{Service: "product", Name: "product-1", Addr: "127.0.0.1:1001", Admin: "127.0.0.1:2001"},
		{Service: "product", Name: "product-2", Addr: "127.0.0.1:1002"},
	}
	assert.Equal(t, want, got)
	assert.Equal(t, 2.0, value(w.gauge.WithLabelValues("product")))
	assert.Equal(t, 1.0, value(clean.session))

	// The heartbeat must outlive several TTLs.
	time.Sleep(3 * ttl)
	assert.Equal(t, []string{"product-1", "product-2"}, names(w.Instances("product")), "heartbeat keeps both alive")

	// SIGKILL-like: the process vanishes without revoking; the lease expires.
	start := time.Now()
	require.NoError(t, crashing.Close())
	require.Eventually(t, func() bool { return len(w.Instances("product")) == 1 }, ttl+3*time.Second, poll,
		"a crashed instance leaves within ttl + slack")
	t.Logf("crashed instance gone after %s (ttl %s)", time.Since(start), ttl)
	assert.Equal(t, []string{"product-2"}, names(w.Instances("product")))

	// Clean stop: the lease is revoked, the instance goes well before its TTL could expire.
	start = time.Now()
	require.NoError(t, r2.Close(ctx))
	require.Eventually(t, func() bool { return len(w.Instances("product")) == 0 }, eventually, poll)
	t.Logf("deregistered instance gone after %s", time.Since(start))
	resp, err := clean.Etcd().Get(ctx, InstancePrefix, clientv3.WithPrefix())
	require.NoError(t, err)
	assert.Zero(t, resp.Count, "revoked lease deletes the key")
	assert.Equal(t, 0.0, value(w.gauge.WithLabelValues("product")))
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestRegistryOutageKeepsCacheAndRecovers(t *testing.T) {
	et := startEtcd(t)
	ctx := context.Background()
	watcherReg := prometheus.NewRegistry()
	wc := connect(t, et.client, watcherReg)
	w, err := wc.Watch(ctx, "order", false, watcherReg)
	require.NoError(t, err)
	svcReg := prometheus.NewRegistry()
	sc := connect(t, et.client, svcReg)
	// The lease must outlive the registry's own shutdown: embedded etcd's Close is graceful
	// and took seconds on a busy CI machine, long enough for a 2 s lease to expire and its
	// deletion to reach the watcher before the watch was cut (CI saw the cache empty). The
	// watcher was right to drop it then; what this test is about is an outage, not expiry.
	_, err = sc.Register(ctx, Instance{Service: "product", Name: "product-1", Addr: "127.0.0.1:1001"}, 10*time.Second)
	require.NoError(t, err)
	require.NoError(t, w.WaitFor(ctxTimeout(t, eventually), "product", 1))
	require.Eventually(t, func() bool { return value(sc.session) == 1 }, eventually, poll)

	et.stop()
	require.Eventually(t, func() bool { return value(sc.session) == 0 }, eventually, poll,
		"session_up drops while the registry is away")
	require.Eventually(t, func() bool { return value(wc.session) == 0 }, eventually, poll,
		"a watch-only client notices the outage too")
	assert.Equal(t, []string{"product-1"}, names(w.Instances("product")), "cache survives the outage")

	et.start(t)
	require.Eventually(t, func() bool { return value(sc.session) == 1 }, eventually, poll,
		"heartbeat resumes after the restart")
	resp, err := sc.Etcd().Get(ctx, Instance{Service: "product", Name: "product-1"}.Key())
	require.NoError(t, err)
	assert.EqualValues(t, 1, resp.Count, "registration present after the restart")

	_, err = sc.Register(ctx, Instance{Service: "product", Name: "product-2", Addr: "127.0.0.1:1002"}, 2*time.Second)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(w.Instances("product")) == 2 }, eventually, poll,
		"changes after the restart reach the watcher")
	require.Eventually(t, func() bool { return value(wc.session) == 1 }, eventually, poll)
	// Clients first, so that etcd's own close does not wait for their streams.
	require.NoError(t, wc.Close())
	require.NoError(t, sc.Close())
}

func TestRegisterAgainAfterLeaseLoss(t *testing.T) {
	et := startEtcd(t)
	ctx := context.Background()
	c := connect(t, et.client, nil)
	inst := Instance{Service: "merchant", Name: "merchant-1", Addr: "127.0.0.1:1001"}
	r, err := c.Register(ctx, inst, time.Second)
	require.NoError(t, err)
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	// What a partition longer than the TTL does: the server drops the lease and the key.
	_, err = c.Etcd().Revoke(ctx, lease)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		resp, err := c.Etcd().Get(ctx, inst.Key())
		return err == nil && resp.Count == 1 && clientv3.LeaseID(resp.Kvs[0].Lease) != lease
	}, eventually, poll, "re-granted and re-put under a new lease")
}

func TestRoutes(t *testing.T) {
	et := startEtcd(t)
	ctx := context.Background()
	c := connect(t, et.client, nil)
	for i := 1; i <= 2; i++ {
		_, err := c.Register(ctx, Instance{Service: "product", Name: "product-" + itoa(i), Addr: "127.0.0.1:100" + itoa(i)}, 2*time.Second)
		require.NoError(t, err)
	}
	require.NoError(t, c.PublishRoute(ctx, "order", "product", "product-1", "127.0.0.1:9001"))
	require.NoError(t, c.PublishRoute(ctx, "gateway", "product", "product-2", "127.0.0.1:9102"))

	tests := []struct {
		name   string
		caller string
		routed bool
		want   []Instance
	}{
		{"routed hides unrouted and uses the proxy", "order", true, []Instance{{Service: "product", Name: "product-1", Addr: "127.0.0.1:9001"}}},
		{"unrouted prefers the route when present", "order", false, []Instance{
			{Service: "product", Name: "product-1", Addr: "127.0.0.1:9001"},
			{Service: "product", Name: "product-2", Addr: "127.0.0.1:1002"},
		}},
		{"routes are per caller", "gateway", true, []Instance{{Service: "product", Name: "product-2", Addr: "127.0.0.1:9102"}}},
		{"a caller without routes sees raw addresses", "merchant", false, []Instance{
			{Service: "product", Name: "product-1", Addr: "127.0.0.1:1001"},
			{Service: "product", Name: "product-2", Addr: "127.0.0.1:1002"},
		}},
		{"a routed caller without routes sees nothing", "merchant", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := c.Watch(ctx, tt.caller, tt.routed, nil)
			require.NoError(t, err)
			got := w.Instances("product")
			assert.Equal(t, tt.want, got)
		})
	}

	w, err := c.Watch(ctx, "order", true, nil)
	require.NoError(t, err)
	ch, cancel := w.Subscribe("product")
	defer cancel()
	require.NoError(t, c.DeleteRoute(ctx, "order", "product", "product-1"))
	select {
	case <-ch:
	case <-time.After(eventually):
		t.Fatal("no change notification after DeleteRoute")
	}
	assert.Empty(t, w.Instances("product"), "deleting the only route hides the instance from a routed caller")
}

func TestValidateInstance(t *testing.T) {
	tests := []struct {
		name string
		in   Instance
		want int
	}{
		{"ok", Instance{Service: "a", Name: "a-1", Addr: "127.0.0.1:1"}, 0},
		{"all empty", Instance{}, 3},
		{"slash in name", Instance{Service: "a", Name: "a/1", Addr: "127.0.0.1:1"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := len(tt.in.Validate())
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := (&Client{}).Register(context.Background(), Instance{}, time.Second)
	assert.ErrorContains(t, err, "register instance")
}

func TestDialClientModeBalancesAndFollowsInstances(t *testing.T) {
	et := startEtcd(t)
	ctx := context.Background()
	b1 := &backend{name: "product-1", hits: make(chan string, 1000)}
	b2 := &backend{name: "product-2", hits: make(chan string, 1000)}
	a1, _ := serveBackend(t, b1, "")
	a2, s2 := serveBackend(t, b2, "")
	svc := connect(t, et.client, nil)
	_, err := svc.Register(ctx, Instance{Service: "product", Name: "product-1", Addr: a1}, 2*time.Second)
	require.NoError(t, err)
	r2, err := svc.Register(ctx, Instance{Service: "product", Name: "product-2", Addr: a2}, 2*time.Second)
	require.NoError(t, err)

	w, err := connect(t, et.client, nil).Watch(ctx, "gateway", false, nil)
	require.NoError(t, err)
	require.NoError(t, w.WaitFor(ctxTimeout(t, eventually), "product", 2))
	cc, err := Dial(w, ModeClient, "", "product")
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	client := refv1.NewProductServiceClient(cc)

	served := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			p, err := client.GetProduct(cctx, &refv1.GetProductRequest{Id: "p-001"})
			cancel()
			if err != nil {
				got["error"]++
				continue
			}
			got[p.GetName()]++
		}
		return got
	}
	require.Eventually(t, func() bool {
		got := served(20)
		return got["product-1"] > 0 && got["product-2"] > 0
	}, eventually, poll, "round robin reaches both instances")

	// Stopped without deregistering (a crash before the lease expires): calls avoid it.
	s2.Stop()
	require.Eventually(t, func() bool {
		got := served(10)
		return got["product-1"] == 10
	}, eventually, poll, "a stopped instance is no longer used")

	// Restarted on the same address: used again without any registry change.
	_, _ = serveBackend(t, b2, a2)
	require.Eventually(t, func() bool { return served(10)["product-2"] > 0 }, eventually, poll,
		"a restarted instance is used again")

	// Deregistered: gone from the resolver even though it still serves.
	require.NoError(t, r2.Close(ctx))
	require.Eventually(t, func() bool { return served(10)["product-1"] == 10 }, eventually, poll,
		"a deregistered instance is no longer used")
}

func TestDialOutlierEjection(t *testing.T) {
	et := startEtcd(t)
	ctx := context.Background()
	good := &backend{name: "good", hits: make(chan string, 1000)}
	bad := &backend{name: "bad", fail: true, hits: make(chan string, 1000)}
	ag, _ := serveBackend(t, good, "")
	ab, _ := serveBackend(t, bad, "")
	c := connect(t, et.client, nil)
	_, err := c.Register(ctx, Instance{Service: "product", Name: "good", Addr: ag}, 2*time.Second)
	require.NoError(t, err)
	_, err = c.Register(ctx, Instance{Service: "product", Name: "bad", Addr: ab}, 2*time.Second)
	require.NoError(t, err)
	w, err := c.Watch(ctx, "gateway", false, nil)
	require.NoError(t, err)
	require.NoError(t, w.WaitFor(ctxTimeout(t, eventually), "product", 2))
	cc, err := Dial(w, ModeClient, "", "product")
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	client := refv1.NewProductServiceClient(cc)
	// Wait until both connections are up so the measurement sees a real choice.
	require.Eventually(t, func() bool {
		_, _ = client.GetProduct(ctx, &refv1.GetProductRequest{Id: "x"})
		return len(bad.hits) > 0 && len(good.hits) > 0
	}, eventually, poll)

	const calls = 100
	okCalls := 0
	for range calls {
		if _, err := client.GetProduct(ctx, &refv1.GetProductRequest{Id: "p-001"}); err == nil {
			okCalls++
		}
	}
	badHits := len(bad.hits)
	t.Logf("bad instance served %d calls, %d of %d calls succeeded", badHits, okCalls, calls)
	// Plain round robin would send about half of the calls to the failing instance.
	assert.Less(t, badHits, calls/4, "the failing instance is ejected")
	assert.Greater(t, okCalls, calls*3/4)
}

func TestDialModes(t *testing.T) {
	tests := []struct {
		name     string
		mode     string
		balancer string
		wantErr  string
	}{
		{"server needs a balancer", ModeServer, "", "balancer address"},
		{"client needs a watcher", ModeClient, "", "needs a watcher"},
		{"unknown mode", "mesh", "", "unknown discovery mode"},
		{"server ok", ModeServer, "127.0.0.1:1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, err := Dial(nil, tt.mode, tt.balancer, "product")
			if tt.wantErr == "" {
				require.NoError(t, err)
				_ = cc.Close()
				return
			}
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestOutlierTracker(t *testing.T) {
	cfg := OutlierConfig{Window: 10, MinCalls: 4, FailureRatio: 0.5, BaseEjection: time.Second, MaxEjection: 4 * time.Second}
	tests := []struct {
		name     string
		outcomes []bool // failures of "a"
		others   []string
		want     bool
	}{
		{"below min calls", []bool{true, true, true}, []string{"b"}, false},
		{"ratio reached", []bool{true, false, true, true}, []string{"b"}, true},
		{"ratio not reached", []bool{true, false, false, false, true, false}, []string{"b"}, false},
		{"never the last instance", []bool{true, true, true, true, true}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			tr := newOutlierTracker(cfg)
			tr.now = func() time.Time { return now }
			cands := append([]string{"a"}, tt.others...)
			tr.keepReady(cands)
			for _, f := range tt.outcomes {
				tr.record("a", f, cands)
			}
			got := tr.ejected("a", now)
			assert.Equal(t, tt.want, got)
			if got {
				assert.False(t, tr.ejected("a", now.Add(cfg.BaseEjection)), "ejection ends after BaseEjection")
			}
		})
	}

	// Consecutive ejections back off, up to MaxEjection.
	now := time.Unix(1000, 0)
	tr := newOutlierTracker(cfg)
	tr.now = func() time.Time { return now }
	cands := []string{"a", "b"}
	tr.keepReady(cands)
	var got []time.Duration
	for range 4 {
		for range cfg.MinCalls {
			tr.record("a", true, cands)
		}
		until := tr.addrs["a"].ejectedUntil
		got = append(got, until.Sub(now))
		now = until
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	assert.Equal(t, want, got)
}

// TestSessionUpWhenRegisterReturns: a caller (readiness, the admin page) reads session_up
// right after Register returned with the registry up; it must already say 1.
func TestSessionUpWhenRegisterReturns(t *testing.T) {
	et := startEtcd(t)
	ctx := context.Background()
	for i := range 20 {
		c := connect(t, et.client, prometheus.NewRegistry())
		_, err := c.Register(ctx, Instance{Service: "product", Name: fmt.Sprintf("product-%d", i), Addr: "127.0.0.1:1001"}, time.Second)
		require.NoError(t, err)
		require.Equal(t, 1.0, value(c.session), "registration %d: session_up right after Register", i)
	}
}
