package harness

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/result"
)

// windowMeasureTimeout bounds a measurement at the end of a fault's window, which delays
// the heal by as much.
const windowMeasureTimeout = 5 * time.Second

// effectOf is a fault's measured effect as the result records it.
func effectOf(e faults.Effect) *result.Effect {
	return &result.Effect{Configured: e.Configured, Measured: e.Measured, Unit: e.Unit, Tolerance: e.Tolerance, Landed: e.Landed, Detail: e.Detail}
}

// historyEffects is a fault's configured and measured effect as the history records them.
func historyEffects(e faults.Effect) (configured, measured *history.Effect) {
	return &history.Effect{Quantity: e.Kind, Value: e.Configured, Unit: e.Unit},
		&history.Effect{Quantity: e.Kind, Value: e.Measured, Unit: e.Unit}
}

// measureWindow measures a fault whose effect builds up over its window, at the window's
// end and before the heal; the heal event carries the measurement into the history. An
// interrupted run concludes nothing (nil).
func measureWindow(ctx context.Context, env faults.Env, wm faults.WindowMeasurer, heal *history.Fault) *result.Effect {
	mctx, cancel := context.WithTimeout(ctx, windowMeasureTimeout)
	defer cancel()
	e, err := wm.MeasureWindow(mctx, env)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil
	case err != nil:
		return &result.Effect{Detail: "measure: " + err.Error()}
	}
	heal.Configured, heal.Measured = historyEffects(e)
	return effectOf(e)
}

// trafficWatch counts what crosses a fault's links while it is in place; nil for a fault
// that acts on no link's proxy or a run whose proxies cannot count.
type trafficWatch struct{ w *faults.TrafficWatch }

// watchTraffic starts counting the traffic on the links f was injected on.
func watchTraffic(env faults.Env, f faults.Fault) trafficWatch {
	lf, ok := f.(faults.LinkFault)
	if !ok || env == nil || env.Links() == nil {
		return trafficWatch{}
	}
	names := lf.InjectedLinks()
	if len(names) == 0 {
		return trafficWatch{}
	}
	return trafficWatch{w: env.Links().Watch(names)}
}

// stop ends the count; nil when nothing was counted.
func (t trafficWatch) stop() *result.Traffic {
	if t.w == nil {
		return nil
	}
	got := t.w.Stop()
	if !got.Observed {
		return nil
	}
	return &result.Traffic{Links: got.Links, Connections: got.Connections, Bytes: got.Bytes, Probes: got.Probes}
}

// uncrossed names the first fault whose links no request of the load crossed while it
// was in place, with the reason a verdict gives; "" when every counted fault was crossed.
// Such a fault showed nothing about the system, however well it landed.
func uncrossed(fs []result.Fault) string {
	for _, f := range fs {
		if f.Traffic == nil || f.Traffic.Connections > 0 {
			continue
		}
		probes := ""
		if f.Traffic.Probes > 0 {
			probes = fmt.Sprintf(" (only the harness's %d probes did)", f.Traffic.Probes)
		}
		return fmt.Sprintf("no request crossed %s during %s%s", strings.Join(f.Traffic.Links, ", "), f.Name, probes)
	}
	return ""
}
