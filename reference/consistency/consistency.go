// Package consistency is the reference system's consistency check kind: Jepsen-style, it
// compares what clients were told about each order placement with the orders, stock and
// inventory events the system holds at the end of the run, and how soon after the last
// heal they added up. It is registered through scenarios.RegisterCheck when the package
// is imported, exactly as a user's own kind is; the framework knows it only through the
// capabilities it implements (scenarios.Placed, checks.FinalJudge) and sut.State.
package consistency

import (
	"time"

	"errors"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/scenarios"
)

// Kind is the kind's name in a scenario (check: consistency).
const Kind = "consistency"

// States of an order in its saga, as the reference system's adapter reports them in
// Order.State and Applied.State. A placement is acknowledged as pending; the system then
// decides it.
const (
	// StatePending: acknowledged, not decided yet. At the end of a run it means the
	// decision never came: the request to decide it was lost, or its answer was.
	StatePending = "pending"
	// StateConfirmed: decided, and the stock was taken.
	StateConfirmed = "confirmed"
	// StateRejected: decided, and refused: nothing was taken.
	StateRejected = "rejected"
	// StateReleased: an applied row whose stock was given back (a compensation).
	StateReleased = "released"
)

func init() {
	if err := scenarios.RegisterCheck(Kind, func() scenarios.CheckSpec { return &Check{} }); err != nil {
		panic(err)
	}
}

// Check compares acknowledged orders with the final state, Jepsen-style.
type Check struct {
	ExactlyOnce    bool               `yaml:"exactly_once,omitempty" json:"exactly_once,omitempty" doc:"every acknowledged order exists exactly once and no failed order exists"`
	StockMatches   bool               `yaml:"stock_matches,omitempty" json:"stock_matches,omitempty" doc:"stock equals initial stock minus the quantities of existing orders"`
	ConvergeWithin scenarios.Duration `yaml:"converge_within,omitempty" json:"converge_within,omitempty" doc:"the above must hold within this time of the last heal"`
	NoDoubleApply  bool               `yaml:"no_double_apply,omitempty" json:"no_double_apply,omitempty" doc:"no inventory event was applied twice"`
	Settled        bool               `yaml:"settled,omitempty" json:"settled,omitempty" doc:"the saga settled: every order ended confirmed or rejected (none left pending, so no event was lost) and confirmed quantities never exceed a product's stock"`
}

// SettleBound is how long after the last heal the run may wait for the state to converge.
func (c *Check) SettleBound() time.Duration { return c.ConvergeWithin.Std() }

// Validate requires at least one property.
func (c *Check) Validate() []error {
	if !c.ExactlyOnce && !c.StockMatches && !c.NoDoubleApply && !c.Settled {
		return []error{errors.New("set at least one of exactly_once, stock_matches, no_double_apply, settled")}
	}
	if c.ConvergeWithin > 0 && !c.StockMatches && !c.ExactlyOnce && !c.Settled {
		return []error{errors.New("converge_within needs stock_matches, exactly_once or settled to converge to")}
	}
	return nil
}

// CheckPlacement keeps the check to the reference system, whose final state it reads.
func (c *Check) CheckPlacement(at scenarios.Placement) []error {
	if !at.Custom {
		return nil
	}
	return []error{scenarios.Hint("it reads the reference system's own metrics or state; use error_rate, latency, metric, http_probe or command",
		"%s applies only to the reference system, not to a custom topology", Kind)}
}

// FinalEvaluator judges the check's properties from the run's placements and the final
// state.
func (c *Check) FinalEvaluator(checks.Phase) checks.FinalEvaluator {
	return &evaluator{spec: c, keys: map[string]keyState{}}
}

var (
	_ scenarios.CheckSpec = (*Check)(nil)
	_ scenarios.Placed    = (*Check)(nil)
	_ scenarios.Settler   = (*Check)(nil)
	_ checks.FinalJudge   = (*Check)(nil)
)
