package explore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/explore"
	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/observe"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
)

// trio is a system under test written for this test: front answers /call by calling a
// and b, each through a proxy of the run's links; a link front->c exists but the load
// never uses it. It has one weakness, on exactly one link: front waits on a without a
// timeout (a failed call to a falls back at once, but a slow one is waited out), while
// it gives b 300 ms and then falls back. So latency on front->a slows every call, and no
// other fault on any link does.
type trio struct {
	front, a, b, c *http.Server
	frontLn        net.Listener
	lns            []net.Listener
	upstream       map[string]*atomic.Pointer[string]
	running        atomic.Bool
}

var _ sut.System = (*trio)(nil)

func newTrio() *trio {
	t := &trio{upstream: map[string]*atomic.Pointer[string]{}}
	for _, n := range []string{"a", "b", "c"} {
		t.upstream[n] = new(atomic.Pointer[string])
	}
	patient := &http.Client{}                                // no timeout: the weakness
	careful := &http.Client{Timeout: 300 * time.Millisecond} // gives up and falls back
	call := func(cl *http.Client, name string) string {
		resp, err := cl.Get("http://" + *t.upstream[name].Load() + "/")
		if err != nil {
			return "fallback-" + name
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	front := http.NewServeMux()
	front.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, call(patient, "a"), " ", call(careful, "b"))
	})
	t.front = &http.Server{Handler: front}
	leaf := func(name string) *http.Server {
		return &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) })}
	}
	t.a, t.b, t.c = leaf("a"), leaf("b"), leaf("c")
	return t
}

func (t *trio) Validate(sc *scenarios.Scenario) []error {
	return sc.Validate(scenarios.SystemShape{
		Services: map[string]int{"front": 0, "a": 0, "b": 0, "c": 0}, Custom: true,
		Links: []string{"front->a", "front->b", "front->c"},
		Edges: []scenarios.Edge{{From: "front", To: "a", ToService: "a"}, {From: "front", To: "b", ToService: "b"}, {From: "front", To: "c", ToService: "c"}},
	})
}

func (t *trio) Runnable(string) error               { return nil }
func (t *trio) Plan(string, bool) (sut.Plan, error) { return sut.Plan{Design: "trio"}, nil }

// Start serves every part on a free port, each callee behind a proxy of the run's links.
func (t *trio) Start(ctx context.Context, env sut.Env) error {
	listen := func() (net.Listener, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			t.lns = append(t.lns, ln)
		}
		return ln, err
	}
	for _, p := range []struct {
		name string
		srv  *http.Server
	}{{"a", t.a}, {"b", t.b}, {"c", t.c}} {
		ln, err := listen()
		if err != nil {
			return err
		}
		addr, err := env.Links.Add(ctx, faults.Link{From: "front", To: p.name, ToService: p.name, Upstream: ln.Addr().String()})
		if err != nil {
			return err
		}
		t.upstream[p.name].Store(&addr)
		go func() { _ = p.srv.Serve(ln) }()
	}
	ln, err := listen()
	if err != nil {
		return err
	}
	t.frontLn = ln
	go func() { _ = t.front.Serve(ln) }()
	t.running.Store(true)
	return nil
}

func (t *trio) Stop(ctx context.Context) error {
	t.running.Store(false)
	var errs []error
	for _, s := range []*http.Server{t.front, t.a, t.b, t.c} {
		errs = append(errs, s.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

func (t *trio) Topology() []result.Component {
	var out []result.Component
	for _, n := range []string{"front", "a", "b", "c"} {
		out = append(out, result.Component{Name: n, Kind: "trio", Service: n})
	}
	return out
}

func (t *trio) Processes() []sut.Process {
	var out []sut.Process
	for _, c := range t.Topology() {
		out = append(out, sut.Process{Name: c.Name, Kind: c.Kind})
	}
	return out
}

func (t *trio) Running(string) bool       { return t.running.Load() }
func (t *trio) Instances(string) []string { return nil }
func (t *trio) LoadTargets() []string     { return []string{"http://" + t.frontLn.Addr().String()} }
func (t *trio) Scrape() (sut.Scrape, error) {
	return sut.Scrape{Targets: func() []observe.Target { return nil }}, nil
}

const trioScenario = `name: trio
description: The trio under a steady load; every call must stay fast and answered.
seed: 3
load:
  rate: 30/s
  duration: 10s
  timeout: 3s
  mix: {call: 1}
  targets:
    - {name: call, url: /call}
steady_state:
  - check: error_rate
    max: 1%
expect:
  overall:
    - check: error_rate
      max: 1%
    - name: calls-stay-fast
      check: latency
      percentile: p99
      max: 800ms
`

// TestExploreFindsTheOneWeakLink explores the trio with link faults: of the links the
// load uses, only latency on front->a breaks a check, alone or paired; front->c, which
// the load never uses, is pruned; the failure's minimal scenario reproduces it and
// validates.
func TestExploreFindsTheOneWeakLink(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FAULTLINE_UNDO_DIR", filepath.Join(dir, "undo"))
	file := filepath.Join(dir, "trio.yaml")
	require.NoError(t, os.WriteFile(file, []byte(trioScenario), 0o644))
	var lines []string
	rep, err := explore.Explore(t.Context(), explore.Spec{
		File: file, Dir: filepath.Join(dir, "explore"), Budget: 2 * time.Minute, Depth: 2,
		Kinds:     []string{"latency", "down"},
		Shape:     explore.Shape{Before: time.Second, Hold: 2500 * time.Millisecond, After: time.Second},
		SystemFor: func(*scenarios.Scenario, string, ...string) sut.System { return newTrio() },
		Progress:  func(l string) { lines = append(lines, l) },
	})
	require.NoError(t, err, strings.Join(lines, "\n"))
	require.Equal(t, explore.Passed, rep.Baseline.Outcome, rep.Baseline.Reason)

	var targets []string
	for _, tg := range rep.Targets {
		targets = append(targets, tg.Name)
	}
	assert.Equal(t, []string{"front->a", "front->b", "a", "b", "front"}, targets, "front->c and c carried no traffic")
	var pruned []string
	for _, p := range rep.Coverage.Pruned {
		pruned = append(pruned, p.What)
	}
	assert.Equal(t, []string{"link front->c", "instance c"}, pruned)

	outcomes := map[string]string{}
	for _, tr := range rep.Trials {
		outcomes[tr.Key()] = tr.Outcome
	}
	// Depth 2 pairs the three faults that passed, never two on one link.
	assert.Equal(t, map[string]string{
		"latency front->a": explore.Failed, "down front->a": explore.Passed,
		"latency front->b": explore.Passed, "down front->b": explore.Passed,
		"down front->a + latency front->b": explore.Passed, "down front->a + down front->b": explore.Passed,
	}, normalizePairs(outcomes), strings.Join(lines, "\n"))
	assert.Equal(t, 4, rep.Coverage.TriedSingles)
	assert.Equal(t, 2, rep.Coverage.TriedPairs)
	assert.Zero(t, rep.Restarts)

	fails := rep.Failures()
	require.Len(t, fails, 1)
	f := fails[0]
	var broke []string
	for _, b := range f.Broke {
		broke = append(broke, b.Name)
		if b.Name == "calls-stay-fast" {
			assert.Greater(t, b.Figure, 800.0, "p99 in ms")
		}
	}
	assert.Contains(t, broke, "calls-stay-fast")
	require.NotNil(t, f.Repro)
	assert.True(t, f.Repro.Verified, "the minimal scenario failed again when run alone: %+v", f.Repro)
	sc, err := scenarios.Load(f.Repro.File)
	require.NoError(t, err)
	assert.Empty(t, newTrio().Validate(sc), "the minimal scenario validates")
	require.Len(t, sc.Faults, 1)
	assert.Equal(t, "latency", sc.Faults[0].Type)
	assert.Equal(t, f.Seed, sc.Seed)

	for _, name := range []string{explore.ReportJSON, explore.ReportMarkdown, explore.ReportHTML} {
		_, err := os.Stat(filepath.Join(rep.Dir, name))
		assert.NoError(t, err, name)
	}
	assert.True(t, slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "latency front->a: FAILED") }),
		"a progress line names the failure: %q", lines)
}

// normalizePairs names each pair with its faults in a fixed order: the seeded order of the
// pairs may list either fault first.
func normalizePairs(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		parts := strings.Split(k, " + ")
		slices.SortFunc(parts, func(a, b string) int {
			return strings.Compare(strings.SplitN(a, " ", 2)[1]+a, strings.SplitN(b, " ", 2)[1]+b)
		})
		out[strings.Join(parts, " + ")] = v
	}
	return out
}

// A budget too small for one trial stops the search cleanly after the discovery load: no
// trial runs, every cell is reported not tried, and the outputs are still written.
func TestExploreBudgetStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FAULTLINE_UNDO_DIR", filepath.Join(dir, "undo"))
	file := filepath.Join(dir, "trio.yaml")
	require.NoError(t, os.WriteFile(file, []byte(trioScenario), 0o644))
	rep, err := explore.Explore(t.Context(), explore.Spec{
		File: file, Dir: filepath.Join(dir, "explore"), Budget: time.Second, Kinds: []string{"latency", "down"},
		Shape:     explore.Shape{Before: time.Second, Hold: 2500 * time.Millisecond, After: time.Second},
		SystemFor: func(*scenarios.Scenario, string, ...string) sut.System { return newTrio() },
	})
	require.NoError(t, err)
	assert.Empty(t, rep.Trials)
	assert.True(t, rep.BudgetSpent)
	assert.Equal(t, 4, rep.Coverage.NotTried)
	for _, row := range rep.Matrix().Rows {
		for _, c := range row {
			assert.Contains(t, []string{explore.NotTried, explore.NotApplicable}, c.Outcome, "%s %s", c.Target, c.Kind)
		}
	}
	assert.FileExists(t, filepath.Join(rep.Dir, explore.ReportHTML))
}
