package harness

import (
	"context"
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
