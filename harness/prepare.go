package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/undo"
)

// prepare does what every run starts with, whatever its system: the run directory, the
// result file (saved last, whatever happens), the undo record (before anything is created),
// the history and the fault proxies. The returned done undoes them in reverse order and
// must be deferred with the run's error even when prepare fails (it then undoes what was
// made so far); a failure has already been recorded through r.fail.
func (r *runner) prepare(ctx context.Context) (done func(*error), err error) {
	o := r.o
	var undos []func(*error)
	done = func(errp *error) {
		for _, u := range slices.Backward(undos) {
			u(errp)
		}
	}
	dir, runName, release, err := r.claimDir()
	if err != nil {
		return done, r.fail(ctx, err)
	}
	undos = append(undos, func(*error) { release() })
	r.dir = dir
	r.res.RunDir = dir
	// First in after the claim, so last out before it: whatever happened, result.json says so.
	undos = append(undos, func(errp *error) {
		r.setPhase("done")
		r.mu.Lock()
		if r.res.Faults == nil {
			r.res.Faults = slices.Clone(r.faults) // an interrupted run still says what it did
		}
		r.mu.Unlock()
		r.res.Duration = result.Duration(r.since())
		if serr := r.res.Save(filepath.Join(dir, ResultFile)); serr != nil {
			*errp = errors.Join(*errp, serr)
		}
	})
	// The undo record exists before anything is created and goes once everything is gone.
	journal, err := undo.OpenJournal(undo.DefaultDir(), undo.NewRunID(r.began, runName), dir, r.res.Runtime)
	if err != nil {
		return done, r.fail(ctx, err)
	}
	r.journal = journal
	r.res.RunID = journal.Record().RunID
	cleanup := r.cleanupContext(ctx)
	undos = append(undos, func(*error) {
		cctx, cancel := cleanup()
		defer cancel()
		if jerr := journal.Close(cctx); jerr != nil {
			o.log.Warn("close undo record", "err", jerr)
		}
	})
	r.setPhase("starting")

	hist, err := history.Create(filepath.Join(dir, HistoryFile), r.began)
	if err != nil {
		return done, r.fail(ctx, err) // history.Create's error says "create history"
	}
	undos = append(undos, func(errp *error) {
		if cerr := hist.Close(); cerr != nil {
			*errp = errors.Join(*errp, cerr)
		}
	})
	r.hist = hist
	r.res.History = HistoryFile

	if up := o.started; up != nil {
		// The system runs already, through up's proxies, which outlive this run.
		r.res.Design, r.links = up.plan.Design, up.Links
		return done, nil
	}
	plan, err := r.sys.Plan(dir, containerized(r.res.Runtime))
	r.res.Design = plan.Design
	if err != nil {
		return done, r.fail(ctx, err)
	}
	linkOpts := o.linkOpts
	if containerized(r.res.Runtime) {
		proxies := max(plan.Proxies, 1) // a topology without links still gets a (quiet) server
		d, closeDocker, err := r.startContainers(ctx, r.res.Runtime, proxies)
		// Registered before the error is checked: a half-made runtime is removed too.
		undos = append(undos, func(*error) {
			cctx, cancel := cleanup()
			defer cancel()
			closeDocker(cctx)
		})
		if err != nil {
			return done, r.fail(ctx, err)
		}
		r.docker = d
		remote, err := d.remote(proxies)
		if err != nil {
			return done, r.fail(ctx, err)
		}
		linkOpts = append(slices.Clone(linkOpts), faults.WithRemote(remote))
	}
	links, err := faults.NewLinks(linkOpts...)
	if err != nil {
		return done, r.fail(ctx, fmt.Errorf("start fault proxies: %w", err))
	}
	undos = append(undos, func(*error) { links.Close() })
	r.links = links
	return done, nil
}

// claimDir claims the run directory before anything is written: a directory another run
// holds is refused, and RunDir stays empty so that nobody writes this run's ERROR result
// or reports into the other run's directory. runName names the run's undo record.
func (r *runner) claimDir() (dir, runName string, release func(), err error) {
	stamp := r.began.UTC().Format("20060102T150405Z")
	dir, runName = r.o.dir, r.sc.Name
	if dir == "" {
		base, err := filepath.Abs(filepath.Join(DefaultRunsDir, stamp+"-"+r.sc.Name))
		if err != nil {
			return "", "", nil, fmt.Errorf("resolve run dir: %w", err)
		}
		dir, release, err = ClaimNewDir(base)
		if err != nil {
			return "", "", nil, fmt.Errorf("create run dir: %w", err)
		}
		// Two runs of one scenario in the same second: base and base-2 get undo records
		// of their own too.
		return dir, strings.TrimPrefix(filepath.Base(dir), stamp+"-"), release, nil
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", "", nil, fmt.Errorf("resolve run dir: %w", err)
	}
	if release, err = ClaimDir(dir); err != nil {
		return "", "", nil, fmt.Errorf("create run dir: %w", err)
	}
	// A finished run's records are not overwritten by this run's ERROR result.
	if held := heldRun(dir); held != "" {
		release()
		return "", "", nil, fmt.Errorf("create run dir: run dir %s already holds a run (%s); choose another directory or remove it", dir, held)
	}
	return dir, runName, release, nil
}

// cleanupContext returns contexts for healing and stopping on the way out: they outlive an
// interrupted ctx (Ctrl-C must still heal) but are bounded.
func (r *runner) cleanupContext(ctx context.Context) func() (context.Context, context.CancelFunc) {
	return func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	}
}

// heldRun names the record of an earlier run in dir, or "" when there is none.
func heldRun(dir string) string {
	for _, f := range []string{ResultFile, HistoryFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return f
		}
	}
	return ""
}
