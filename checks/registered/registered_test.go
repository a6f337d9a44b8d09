package registered_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// statusCount bounds how many requests answered with one status: a kind a user adds for
// something the built-in kinds do not say ("no more than 5 throttled answers").
type statusCount struct {
	Status int `yaml:"status" json:"status" doc:"HTTP status to count" required:"true"`
	Max    int `yaml:"max" json:"max" doc:"most answers with that status that pass"`
}

const kind = "status_count"

// Validate checks the status; the message starts with its key so it lands on its line.
func (c *statusCount) Validate() []error {
	if c.Status < 100 || c.Status > 599 {
		return []error{fmt.Errorf("status %d is not an HTTP status", c.Status)}
	}
	if c.Max < 0 {
		return []error{errors.New("max must not be negative")}
	}
	return nil
}

// CheckPlacement keeps the kind out of steady_state, to prove phase rules reach validation.
func (c *statusCount) CheckPlacement(at scenarios.Placement) []error {
	if at.Phase == scenarios.PlaceSteady {
		return []error{errors.New("status_count does not belong in steady_state")}
	}
	return nil
}

// AutoName names an unnamed check after its status.
func (c *statusCount) AutoName() string { return fmt.Sprintf("%s/%d", kind, c.Status) }

// Evaluator counts the phase's answers with the status.
func (c *statusCount) Evaluator(ph checks.Phase) checks.Evaluator {
	return &statusEval{spec: c, phase: ph}
}

// AbortEvaluator judges a window as a phase.
func (c *statusCount) AbortEvaluator(ph checks.Phase) checks.Evaluator { return c.Evaluator(ph) }

type statusEval struct {
	spec  *statusCount
	phase checks.Phase
	n, of int
}

func (e *statusEval) Request(r *loadgen.Result) {
	e.of++
	if r.Status == e.spec.Status {
		e.n++
	}
}

func (e *statusEval) Metric(time.Duration, *history.Metric) {}

func (e *statusEval) Result() result.Check {
	if e.of == 0 {
		return result.Check{Skipped: true, Message: "no requests in " + e.phase.Name}
	}
	c := result.Check{Figure: float64(e.n), Op: "<=", Threshold: float64(e.spec.Max), Passed: e.n <= e.spec.Max}
	c.Message = fmt.Sprintf("%d of %d answers were %d in %s", e.n, e.of, e.spec.Status, e.phase.Name)
	return c
}

var register = sync.OnceValue(func() error {
	return scenarios.RegisterCheck(kind, func() scenarios.CheckSpec { return &statusCount{} })
})

const scenarioYAML = `name: registered-kind
description: a check kind registered from outside the checks package
load:
  rate: 10/s
  duration: 10s
  mix: {browse: 1}
expect:
  overall:
    - check: status_count
      status: %d
      max: 3
abort_when:
  - check: status_count
    name: too-many-throttled
    status: %d
    max: 3
`

// requests are 40 browses over the 10 s load, throttled of them answered 429.
func requests(throttled int) []loadgen.Result {
	var out []loadgen.Result
	for i := range 40 {
		r := loadgen.Result{Journey: reference.JourneyBrowse, Method: "GET", Path: "/products",
			Start: time.Duration(i) * 250 * time.Millisecond, Latency: 10 * time.Millisecond, Status: 200, OK: true}
		if i >= 40-throttled {
			r.Status, r.OK = 429, false
		}
		out = append(out, r)
	}
	return out
}

func TestRegisteredCheckKindWorksEndToEnd(t *testing.T) {
	require.NoError(t, register())
	require.Contains(t, scenarios.CheckKinds(), kind)

	t.Run("a bad spec is refused on its line", func(t *testing.T) {
		sc, err := scenarios.Parse("bad.yaml", fmt.Appendf(nil, scenarioYAML, 42, 429))
		require.NoError(t, err, "decoded")
		err = errors.Join(sc.Validate(scenarios.DefaultShape(sc.System))...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "bad.yaml:10:15: expect.overall[0]: status 42 is not an HTTP status")
	})
	t.Run("a phase rule is refused on the check's line", func(t *testing.T) {
		y := fmt.Sprintf(scenarioYAML, 429, 429) + "steady_state:\n  - check: status_count\n    status: 429\n"
		sc, err := scenarios.Parse("steady.yaml", []byte(y))
		require.NoError(t, err, "decoded")
		err = errors.Join(sc.Validate(scenarios.DefaultShape(sc.System))...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "steady.yaml:18:5: steady_state[0]: status_count does not belong in steady_state")
	})

	for _, tt := range []struct {
		name      string
		throttled int
		wantPass  bool
	}{
		{"at the bound it passes", 3, true},
		{"above the bound it fails", 4, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := scenarios.Parse("ok.yaml", fmt.Appendf(nil, scenarioYAML, 429, 429))
			require.NoError(t, err)
			require.Empty(t, sc.Validate(scenarios.DefaultShape(sc.System)))
			require.IsType(t, &statusCount{}, sc.Expect.Overall[0].Spec, "decoded into the registered spec")
			reqs := requests(tt.throttled)

			// expect: evaluated from the history like a built-in kind.
			p := filepath.Join(t.TempDir(), "history.jsonl")
			w, err := history.Create(p, time.Now(), history.WithFlushInterval(0))
			require.NoError(t, err)
			for _, r := range reqs {
				ev := history.RequestEvent(r)
				ev.T = r.End()
				require.NoError(t, w.Write(ev))
			}
			require.NoError(t, w.Close())
			got, err := checks.Evaluate(context.Background(), sc, p, checks.Inputs{Phases: checks.Phases(sc, nil, 0, 10*time.Second)})
			require.NoError(t, err)
			require.Len(t, got, 1)
			c := got[0]
			assert.Equal(t, "overall/status_count/429", c.Name)
			assert.Equal(t, kind, c.Kind)
			assert.False(t, c.Skipped, c.Message)
			assert.Equal(t, tt.wantPass, c.Passed, c.Message)
			assert.Equal(t, float64(tt.throttled), c.Figure)

			// abort_when: the same kind judges the last window of a running system.
			require.Empty(t, checks.Unjudged(sc))
			m := checks.NewMonitor(sc, 10*time.Second, func() time.Duration { return 10 * time.Second })
			require.NotNil(t, m)
			for _, r := range reqs {
				m.Request(r)
			}
			e := m.Check()
			if tt.wantPass {
				assert.Nil(t, e)
				return
			}
			require.NotNil(t, e)
			assert.Equal(t, "too-many-throttled", e.Check.Name)
			assert.Equal(t, kind, e.Check.Kind)
			assert.Contains(t, e.Error(), "4 of 40 answers were 429")
		})
	}
}

// fileExists is a live kind registered from outside: it looks at the system when its
// phase ends instead of reading the history.
type fileExists struct {
	Name string `yaml:"name_of_file" json:"name_of_file" doc:"file that must exist in the run's directory" required:"true"`
}

func (c *fileExists) Validate() []error { return nil }

// RunLive looks for the file now.
func (c *fileExists) RunLive(_ context.Context, env checks.LiveEnv) result.Check {
	_, err := os.Stat(filepath.Join(env.Dir, c.Name))
	return result.Check{Passed: err == nil, Message: fmt.Sprintf("%s exists: %t", c.Name, err == nil)}
}

var registerLive = sync.OnceValue(func() error {
	return scenarios.RegisterCheck("file_exists", func() scenarios.CheckSpec { return &fileExists{} })
})

func TestRegisteredLiveKindRunsAtItsPhaseEnd(t *testing.T) {
	require.NoError(t, registerLive())
	y := `name: registered-live-kind
description: a live check kind registered from outside the checks package
load:
  rate: 10/s
  duration: 10s
  mix: {browse: 1}
expect:
  after:
    - check: file_exists
      name: marker
      name_of_file: marker.txt
`
	sc, err := scenarios.Parse("live.yaml", []byte(y))
	require.NoError(t, err)
	require.Empty(t, sc.Validate(scenarios.DefaultShape(sc.System)))
	phases := checks.Phases(sc, nil, 0, 10*time.Second)
	lcs := checks.LiveChecks(sc, phases)
	require.Len(t, lcs, 1, "a live kind is run live")
	dir := t.TempDir()
	c := lcs[0].Run(context.Background(), checks.LiveEnv{Dir: dir})
	assert.False(t, c.Passed, c.Message)
	assert.Equal(t, "file_exists", c.Kind)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "marker.txt"), nil, 0o644))
	c = lcs[0].Run(context.Background(), checks.LiveEnv{Dir: dir})
	assert.True(t, c.Passed, c.Message)
	assert.Equal(t, "marker", c.Name)

	got, err := checks.Evaluate(context.Background(), sc, writeEmptyHistory(t), checks.Inputs{Phases: phases})
	require.NoError(t, err)
	assert.Empty(t, got, "Evaluate leaves a live kind to the harness")
}

func writeEmptyHistory(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := history.Create(p, time.Now())
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return p
}
