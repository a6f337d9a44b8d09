package harness

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
)

// abortMonitor is the run's hook into its checks.Monitor: the request sink and the
// scrapers feed it while stop conditions are watched.
type abortMonitor struct{ m *checks.Monitor }

func (a *abortMonitor) onRequest(r loadgen.Result)                 { a.m.Request(r) }
func (a *abortMonitor) onMetric(t time.Duration, x history.Metric) { a.m.Metric(t, x) }

// watchAbort starts judging the scenario's stop conditions (abort_when, see
// checks.Monitor) over the run's live streams. The returned context is cancelled with a
// *checks.AbortError when one fires; stop ends the evaluation (not the context) and
// release, deferred, frees the context. Both are safe to call more than once.
func (r *runner) watchAbort(ctx context.Context) (actx context.Context, stop, release func()) {
	if kinds := checks.Unjudged(r.sc); len(kinds) > 0 {
		r.o.log.Warn("abort_when: these checks cannot be evaluated while the run goes; ignored", "checks", strings.Join(kinds, ", "))
	}
	m := checks.NewMonitor(r.sc, checks.DefaultAbortWindow, r.since)
	if m == nil {
		return ctx, func() {}, func() {}
	}
	actx, cancel := context.WithCancelCause(ctx)
	r.abort.Store(&abortMonitor{m: m})
	halt := m.Run(actx, func(e *checks.AbortError) {
		r.o.log.Warn("stop condition fired; healing at once", "condition", e.Check.Name, "reason", e.Check.Message)
		cancel(e)
	})
	stop = sync.OnceFunc(func() { halt(); r.abort.Store(nil) })
	return actx, stop, func() { stop(); cancel(nil) }
}

// abortedBy reports the stop condition that ended ctx, if one did.
func abortedBy(ctx context.Context) (*checks.AbortError, bool) {
	var e *checks.AbortError
	ok := ctx.Err() != nil && errors.As(context.Cause(ctx), &e)
	return e, ok
}
