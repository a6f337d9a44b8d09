package explore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// verify hands every failure back as its minimal scenario — the explored system, design,
// load and checks with the trial's seed and only the failing fault, at a fixed time after
// at least ReproBefore of load — written to DIR/repro, and runs it once the normal way (a
// fresh system, harness.Run) to see the failure again before calling it reproduced. A failure beyond MaxRepros keeps its file, marked not verified.
func (e *explorer) verify(ctx context.Context) error {
	dir := filepath.Join(e.rep.Dir, "repro")
	done := 0
	for i := range e.rep.Trials {
		t := &e.rep.Trials[i]
		if t.Outcome != Failed {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create repro dir: %w", err)
		}
		stem := strings.TrimSuffix(filepath.Base(t.Scenario), ".yaml")
		file := filepath.Join(dir, stem+".yaml")
		keys := make([]string, len(t.Faults))
		for i, c := range t.Faults {
			keys[i] = c.Key()
		}
		src, err := derive(e.src, e.spec.File, variant{
			name: slug(e.name + " " + strings.Join(keys, " and ")), seed: t.Seed, shape: e.reproShape(), faults: t.Faults,
			design: e.spec.Design,
			description: fmt.Sprintf("Minimal scenario found by faultline explore of %s (trial %d): %s for %s under the scenario's load, judged by its checks.",
				e.name, t.N, t.Key(), e.spec.Shape.Hold),
		})
		if err != nil {
			return err
		}
		head := fmt.Sprintf("# Found by faultline explore %s (trial %d): %s.\n# Reproduce: faultline run %s\n", e.spec.File, t.N, t.Key(), file)
		if err := os.WriteFile(file, append([]byte(head), src...), 0o644); err != nil {
			return fmt.Errorf("write minimal scenario: %w", err)
		}
		t.Repro = &Repro{File: file}
		if e.spec.MaxRepros > 0 && done >= e.spec.MaxRepros {
			t.Repro.Reason = fmt.Sprintf("not verified: only the first %d failures are (MaxRepros)", e.spec.MaxRepros)
			continue
		}
		if ctx.Err() != nil {
			t.Repro.Reason = "not verified: interrupted"
			continue
		}
		done++
		e.progress("verifying %s: faultline run %s", t.Key(), file)
		e.reproduce(ctx, t.Repro, t.Broke, filepath.Join(dir, stem))
		e.progress("  %s", reproLine(*t.Repro))
	}
	return ctx.Err()
}

// ReproBefore is the least time a minimal scenario's load runs before its fault: it
// starts a fresh system, whose first requests are slower than a warm one's, and its
// steady state is judged on that time alone (a short window's p99 is its slowest request).
const ReproBefore = 4 * time.Second

// reproShape is the trials' shape with at least ReproBefore before the fault.
func (e *explorer) reproShape() Shape {
	s := e.spec.Shape
	s.Before = max(s.Before, ReproBefore)
	return s
}

// reproduce runs the minimal scenario once through the normal run path and records
// whether it failed again on one of the checks the trial broke.
func (e *explorer) reproduce(ctx context.Context, r *Repro, want []BrokenCheck, runDir string) {
	sc, err := scenarios.Load(r.File)
	if err != nil {
		r.Verdict, r.Reason = string(result.Error), "the minimal scenario does not parse: "+err.Error()
		return
	}
	opts := append(slices.Clone(e.spec.Harness), harness.WithSystemFor(e.spec.SystemFor), harness.WithDir(runDir))
	if e.spec.Command != "" {
		opts = append(opts, harness.WithCommand(e.spec.Command, e.spec.Args...))
	}
	res, err := harness.Run(ctx, sc, opts...)
	r.RunDir = runDir
	if res == nil {
		r.Verdict, r.Reason = string(result.Error), fmt.Sprint(err)
		return
	}
	r.Verdict, r.Reason = string(res.Verdict), res.Reason
	for _, b := range broken(res.Checks) {
		r.Broke = append(r.Broke, b.Name)
	}
	if res.Verdict != result.Failed {
		return
	}
	for _, w := range want {
		if slices.Contains(r.Broke, w.Name) {
			r.Verified = true
			return
		}
	}
	r.Reason = "failed on other checks than the trial: " + strings.Join(r.Broke, ", ")
}

func reproLine(r Repro) string {
	if r.Verified {
		return "reproduced: " + strings.Join(r.Broke, ", ")
	}
	if r.Verdict == "" {
		return r.Reason
	}
	return fmt.Sprintf("NOT reproduced (%s: %s)", r.Verdict, r.Reason)
}
