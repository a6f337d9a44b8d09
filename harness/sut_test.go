package harness_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/observe"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
)

// pair is a system under test of two in-process HTTP servers: front answers /call by
// calling store, through whatever address it is given for store. It is neither the
// reference system nor a topology: only what package sut asks for, no process control.
type pair struct {
	front, store *http.Server
	frontLn      net.Listener
	storeLn      net.Listener
	upstream     atomic.Pointer[string] // store's address as front dials it
	calls        atomic.Int64
	served       atomic.Int64 // items store answered
	running      atomic.Bool
}

var _ sut.System = (*pair)(nil)

// newPair listens on two free ports now, so the scenario can name front's address.
func newPair(t *testing.T) *pair {
	t.Helper()
	p := &pair{}
	var err error
	p.frontLn, err = net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.storeLn, err = net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	client := &http.Client{Timeout: 2 * time.Second}
	front := http.NewServeMux()
	front.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		p.calls.Add(1)
		resp, err := client.Get("http://" + *p.upstream.Load() + "/item")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(w, resp.Body)
	})
	front.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE front_calls_total counter\nfront_calls_total %d\n", p.calls.Load())
	})
	store := http.NewServeMux()
	store.HandleFunc("/item", func(w http.ResponseWriter, r *http.Request) {
		p.served.Add(1)
		fmt.Fprint(w, "an item")
	})
	p.front, p.store = &http.Server{Handler: front}, &http.Server{Handler: store}
	t.Cleanup(func() { _ = p.frontLn.Close(); _ = p.storeLn.Close() })
	return p
}

func (p *pair) frontAddr() string { return p.frontLn.Addr().String() }

// Validate: two services and the one link between them.
func (p *pair) Validate(sc *scenarios.Scenario) []error {
	return sc.Validate(scenarios.SystemShape{
		Services: map[string]int{"front": 0, "store": 0}, Custom: true, Links: []string{"front->store"},
		Edges: []scenarios.Edge{{From: "front", To: "store", ToService: "store"}},
	})
}

func (p *pair) Runnable(rt string) error {
	if rt != "local" {
		return &sut.Unrunnable{Err: fmt.Errorf("runtime %s: the pair runs in the test", rt), Hint: "run it locally"}
	}
	return nil
}

func (p *pair) Plan(string, bool) (sut.Plan, error) { return sut.Plan{Design: "pair"}, nil }

// Start puts front->store through a proxy of the run's links and serves.
func (p *pair) Start(ctx context.Context, env sut.Env) error {
	listen, err := env.Links.Add(ctx, faults.Link{From: "front", To: "store", ToService: "store", Upstream: p.storeLn.Addr().String()})
	if err != nil {
		return err
	}
	p.upstream.Store(&listen)
	go func() { _ = p.store.Serve(p.storeLn) }()
	go func() { _ = p.front.Serve(p.frontLn) }()
	p.running.Store(true)
	return nil
}

func (p *pair) Stop(ctx context.Context) error {
	p.running.Store(false)
	return errorsJoin(p.front.Shutdown(ctx), p.store.Shutdown(ctx))
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *pair) Topology() []result.Component {
	return []result.Component{{Name: "front", Kind: "pair", Service: "front"}, {Name: "store", Kind: "pair", Service: "store"}}
}

func (p *pair) Processes() []sut.Process {
	return []sut.Process{{Name: "front", Kind: "pair"}, {Name: "store", Kind: "pair"}}
}

func (p *pair) Running(string) bool       { return p.running.Load() }
func (p *pair) Instances(string) []string { return nil }
func (p *pair) LoadTargets() []string     { return []string{"http://" + p.frontAddr()} }
func (p *pair) Scrape() (sut.Scrape, error) {
	targets := []observe.Target{{Component: "front", URL: "http://" + p.frontAddr() + "/metrics"}}
	return sut.Scrape{Targets: func() []observe.Target { return targets }, Checked: true}, nil
}

// TestRunSystemOfItsOwn runs a scenario through the same pipeline as the reference
// system and a topology, against a system written here: the link fault is put on the
// pair's own proxy and lands, the load goes through it, the metric is scraped from front,
// and every check is evaluated.
func TestRunSystemOfItsOwn(t *testing.T) {
	p := newPair(t)
	yaml := fmt.Sprintf(`name: own-system
description: A system under test written in the test, run through the same pipeline.
seed: 5
load:
  rate: 20/s
  duration: 6s
  timeout: 3s
  mix: {call: 1}
  targets:
    - {name: call, url: "http://%s/call"}
faults:
  - name: slow-store
    type: latency
    target: front->store
    latency: 300ms
    at: 2s
    for: 2s
expect:
  during:
    slow-store:
      - {check: fault_landed, name: slow-store-landed}
      - {check: latency, name: slowed, percentile: p50, max: 250ms}
  overall:
    - {check: error_rate, name: no-errors, max: 1%%}
    - {check: metric, name: front-counted, component: front, metric: front_calls_total, op: ">", value: 10}
expect_failure:
  check: slowed
  reason: "p50"
  explanation: the latency on front->store slows every call, so a p50 bound below it must fail.
`, p.frontAddr())
	sc, err := scenarios.Parse("own-system.yaml", []byte(yaml))
	require.NoError(t, err)
	dir := t.TempDir()
	res, err := harness.Run(t.Context(), sc, harness.WithSystem(p), harness.WithDir(dir))
	require.NoError(t, err, "reason: %s", res.Reason)

	assert.Equal(t, result.Passed, res.Verdict, res.Reason)
	assert.Equal(t, "pair", res.Design)
	assert.Contains(t, res.Links, result.Link{From: "front", To: "store"})
	assert.Len(t, res.Topology, 2)
	require.Len(t, res.Faults, 1)
	eff := res.Faults[0].Effect
	require.NotNil(t, eff)
	assert.True(t, eff.Landed, "latency on front->store: %+v", eff)
	assert.InDelta(t, 300, eff.Measured, 150, "measured added latency, ms")
	byName := map[string]result.Check{}
	for _, c := range res.Checks {
		byName[c.Name] = c
	}
	for name, passed := range map[string]bool{"slow-store-landed": true, "slowed": false, "no-errors": true, "front-counted": true} {
		c, ok := byName[name]
		require.True(t, ok, "check %s evaluated", name)
		assert.False(t, c.Skipped, "%s: %s", name, c.Message)
		assert.Equal(t, passed, c.Passed, "%s: %s", name, c.Message)
	}
	assert.Positive(t, res.Load.Requests)
	b, err := os.ReadFile(filepath.Join(dir, harness.ProcessesFile))
	require.NoError(t, err)
	var procs []harness.ProcessRecord
	require.NoError(t, json.Unmarshal(b, &procs))
	assert.Len(t, procs, 2)
	assert.False(t, p.running.Load(), "the pipeline stopped the system")
}

// TestRunsOnAStartedSystem runs two scenarios, one after the other, on one system started
// once (harness.StartSystem, then WithStarted): each run has its own directory and result,
// its fault lands on the started system's proxy and is healed at its end, and the system
// is neither started again nor stopped by the runs.
func TestRunsOnAStartedSystem(t *testing.T) {
	p := newPair(t)
	t.Setenv("FAULTLINE_UNDO_DIR", filepath.Join(t.TempDir(), "undo"))
	up, err := harness.StartSystem(t.Context(), p, "pair", harness.WithDir(filepath.Join(t.TempDir(), "system")))
	require.NoError(t, err)
	defer up.Close(context.WithoutCancel(t.Context()))
	yaml := fmt.Sprintf(`name: on-a-started-system
description: A run on a system that was started before it and outlives it.
seed: %%d
load:
  rate: 20/s
  duration: 4s
  timeout: 3s
  mix: {call: 1}
  targets:
    - {name: call, url: "http://%s/call"}
faults:
  - {name: slow-store, type: latency, target: front->store, latency: 300ms, at: 1s, for: 2s}
expect:
  overall:
    - {check: error_rate, name: no-errors, max: 1%%%%}
`, p.frontAddr())
	for i := 1; i <= 2; i++ {
		sc, err := scenarios.Parse("started.yaml", []byte(fmt.Sprintf(yaml, i)))
		require.NoError(t, err)
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		res, err := harness.Run(t.Context(), sc, harness.WithStarted(up), harness.WithDir(dir))
		require.NoError(t, err)
		assert.Equal(t, result.Passed, res.Verdict, "run %d: %s", i, res.Reason)
		assert.Equal(t, "pair", res.Design)
		require.Len(t, res.Faults, 1)
		require.NotNil(t, res.Faults[0].Effect)
		assert.True(t, res.Faults[0].Effect.Landed, "run %d: %+v", i, res.Faults[0].Effect)
		assert.FileExists(t, filepath.Join(dir, harness.ResultFile))
		assert.True(t, p.running.Load(), "run %d stopped the started system", i)
		names, err := up.Links.ToxicNames("front->store")
		require.NoError(t, err)
		assert.Subset(t, []string{"faultline_traffic"}, names, "run %d left its fault on the link (only the counting toxic stays)", i)
	}
	assert.Positive(t, p.served.Load())
}
