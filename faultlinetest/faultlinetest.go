// Package faultlinetest runs a Faultline scenario from a Go test, so that a team can gate
// its own services on resilience with `go test`:
//
//	func TestSurvivesSlowAPI(t *testing.T) {
//		faultlinetest.Run(t, "testdata/slow-api.yaml")
//	}
//
// Run loads and validates the scenario, runs it (a scenario with a topology starts the
// user's own components; one without starts the reference system), and fails the test
// when the verdict is not passed, with one t.Errorf line per failed check giving its
// figure, its threshold and its message. The run directory (result.json, history.jsonl,
// logs) is kept under the test's temporary directory unless WithDir says otherwise.
package faultlinetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/harness"
	// The reference system's adapter registers the default system scenarios validate
	// against when they name no topology.
	_ "github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/systems"
)

// Option configures Run.
type Option func(*config)

type config struct {
	dir     string
	timeout time.Duration
	harness []harness.Option
	logf    bool
}

// WithDir keeps the run directory at dir instead of a temporary directory that the test
// removes, so a failed run can be looked at afterwards.
func WithDir(dir string) Option { return func(c *config) { c.dir = dir } }

// WithTimeout bounds the whole run (default: the test's deadline, else 10 minutes).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithSeed overrides the scenario's seed.
func WithSeed(seed int64) Option {
	return func(c *config) { c.harness = append(c.harness, harness.WithSeed(seed)) }
}

// WithHarnessOptions passes options through to harness.Run.
func WithHarnessOptions(opts ...harness.Option) Option {
	return func(c *config) { c.harness = append(c.harness, opts...) }
}

// WithLog sends the harness's log to t.Log, for debugging a scenario.
func WithLog() Option { return func(c *config) { c.logf = true } }

// Run runs the scenario file at path and returns its result. It fails t (t.Errorf, and
// t.Fatalf when the scenario is invalid or the harness could not run it) unless the
// verdict is passed; every failed check is reported on a line of its own:
//
//	check during:slow-api/latency p50: figure 302 ms <= threshold 250 ms — p50 latency 302 ms > 250 ms during slow-api
func Run(t testing.TB, path string, opts ...Option) *result.Run {
	t.Helper()
	c := config{}
	for _, o := range opts {
		o(&c)
	}
	sc, err := scenarios.Load(path)
	if sc == nil {
		t.Fatalf("faultline: load scenario %s: %v", path, err)
		return nil
	}
	if errs := sc.Validate(scenarios.SystemShape{}); len(errs) > 0 {
		for _, e := range errs {
			t.Errorf("faultline: %v", e)
		}
		t.FailNow()
		return nil
	}
	dir := c.dir
	if dir == "" {
		dir = t.TempDir()
	}
	ctx := context.Background()
	timeout := c.timeout
	if d, ok := deadline(t); ok && timeout == 0 {
		// Leave time to heal and stop before the test binary is killed at its deadline;
		// with too little left, running would only leave faults behind.
		timeout = time.Until(d) - 5*time.Second
		if timeout <= 0 {
			t.Fatalf("faultlinetest: not enough time left before the test deadline (%s) to run %s and heal it", time.Until(d).Round(time.Second), path)
			return nil
		}
	}
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hopts := append([]harness.Option{harness.WithDir(dir), harness.WithSystemFor(systems.For)}, c.harness...)
	if c.logf {
		hopts = append(hopts, harness.WithLogger(slog.New(slog.NewTextHandler(logWriter{t}, nil))))
	}
	res, err := harness.Run(ctx, sc, hopts...)
	var verr *harness.ValidationError
	switch {
	case errors.As(err, &verr):
		for _, e := range verr.Errs {
			t.Errorf("faultline: %v", e)
		}
		t.FailNow()
		return res
	case err != nil:
		t.Fatalf("faultline: run %s: %v (run directory %s)", path, err, dir)
		return res
	}
	Report(t, res)
	return res
}

// Report fails t with one line per failed check when res's verdict is not passed, and
// logs where the run's records are. It is what Run does after the run, for callers that
// run the harness themselves.
func Report(t testing.TB, res *result.Run) {
	t.Helper()
	if res == nil {
		t.Errorf("faultline: no result")
		return
	}
	t.Logf("faultline: %s: %s (%s); run directory %s", res.Scenario, res.Verdict, res.Reason, res.RunDir)
	if res.Verdict == result.Passed {
		return
	}
	failed := 0
	for _, c := range res.Checks {
		if c.Passed {
			continue
		}
		if res.ExpectedFailure != nil && res.ExpectedFailure.Check == c.Name && res.ExpectedFailure.Observed {
			continue
		}
		failed++
		t.Errorf("%s", FailureLine(c))
	}
	if failed == 0 || res.Verdict != result.Failed {
		msg := fmt.Sprintf("faultline: %s: verdict %s: %s", res.Scenario, res.Verdict, res.Reason)
		if res.Hint != "" {
			msg += " (hint: " + res.Hint + ")"
		}
		t.Errorf("%s", msg)
	}
}

// FailureLine formats a failed check as "check X: figure F op threshold T — message",
// where op is the bound the figure was held to.
func FailureLine(c result.Check) string {
	if c.Skipped {
		return fmt.Sprintf("check %s: skipped — %s", c.Name, c.Message)
	}
	return fmt.Sprintf("check %s: figure %s %s threshold %s — %s", c.Name, figure(c.Figure, c.Unit), c.Op, figure(c.Threshold, c.Unit), c.Message)
}

func figure(v float64, unit string) string {
	s := strconv.FormatFloat(v, 'g', 6, 64)
	if unit != "" {
		s += " " + unit
	}
	return s
}

func deadline(t testing.TB) (time.Time, bool) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		return d.Deadline()
	}
	return time.Time{}, false
}

// logWriter sends the harness's log lines to the test log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
