package consistency

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
)

// holdsStock reports whether an order in state st counts against stock: confirmed, and
// pending too (it may have been taken already; only a decision says it was not), and an
// order of a system without states.
func holdsStock(st string) bool { return st != StateRejected }

// countState counts the orders in state st.
func countState(orders []Order, st string) int {
	n := 0
	for _, o := range orders {
		if o.State == st {
			n++
		}
	}
	return n
}

// taken is how much stock an applied row took.
func taken(a Applied) int64 {
	if a.State != "" && a.State != StateConfirmed {
		return 0
	}
	return a.Quantity * max(a.Applications, 1)
}

// keyState is what clients learned about one idempotency key, Jepsen-style: acknowledged
// (a 2xx with an order id), rejected (a 4xx) or indeterminate (no answer, a 5xx). It is
// the one thing kept per order placement across the stream (never per browse request):
// memory grows with the number of orders a run places, a few dozen bytes each.
type keyState struct {
	acked, rejected, indeterminate bool
	orderID                        string // first acknowledged order id
	otherID                        string // a different id acknowledged for the same key
}

// evaluator judges one consistency check: it remembers what clients learned of each key
// from the run's requests, then judges the final state.
type evaluator struct {
	spec           *Check
	keys           map[string]keyState
	final          *State
	convergedAfter time.Duration
}

// Request records placements: requests with an idempotency key that change state.
func (ev *evaluator) Request(r *loadgen.Result) {
	if r.Key == "" || r.Method == http.MethodGet || r.Method == http.MethodHead {
		return
	}
	k := ev.keys[r.Key]
	defer func() { ev.keys[r.Key] = k }()
	switch {
	case r.Acknowledged() && r.Created != "":
		k.acked = true
		switch {
		case k.orderID == "":
			k.orderID = r.Created
		case k.orderID != r.Created && k.otherID == "":
			k.otherID = r.Created
		}
	case r.Rejected():
		k.rejected = true
	default:
		k.indeterminate = true
	}
}

// maxExamples bounds how many violations a Detail lists.
const maxExamples = 10

type violations struct {
	n        int
	examples []string
	counts   map[string]int
	order    []string
}

func (v *violations) add(kind, format string, args ...any) {
	if v.counts == nil {
		v.counts = map[string]int{}
	}
	if v.counts[kind] == 0 {
		v.order = append(v.order, kind)
	}
	v.counts[kind]++
	v.n++
	if len(v.examples) < maxExamples {
		v.examples = append(v.examples, fmt.Sprintf(format, args...))
	}
}

func (v *violations) summary() string {
	parts := make([]string, 0, len(v.order))
	for _, k := range v.order {
		parts = append(parts, fmt.Sprintf("%d %s", v.counts[k], k))
	}
	return strings.Join(parts, ", ")
}

func (v *violations) detail() string {
	if v.n == 0 {
		return ""
	}
	d := strings.Join(v.examples, "\n")
	if v.n > len(v.examples) {
		d += fmt.Sprintf("\n… and %d more", v.n-len(v.examples))
	}
	return d
}

// sub is the result of one property, named after it (the caller prefixes the check's name).
func (ev *evaluator) sub(prop string) result.Check { return result.Check{Name: prop} }

// Results judges every property the check sets, from final; without a final state of the
// reference system's, each is skipped.
func (ev *evaluator) Results(final *checks.Final) []result.Check {
	if final != nil {
		ev.final, _ = final.State.(*State)
		ev.convergedAfter = final.ConvergedAfter
	}
	s := ev.spec
	var props []string
	if s.ExactlyOnce {
		props = append(props, "exactly_once")
	}
	if s.StockMatches {
		props = append(props, "stock_matches")
	}
	if s.NoDoubleApply {
		props = append(props, "no_double_apply")
	}
	if s.Settled {
		props = append(props, "settled")
	}
	if s.ConvergeWithin > 0 {
		props = append(props, "converge_within")
	}
	if ev.final == nil {
		out := make([]result.Check, 0, len(props))
		for _, prop := range props {
			c := ev.sub(prop)
			c.Skipped, c.Message = true, "the system's final state was not read, so consistency cannot be judged"
			out = append(out, c)
		}
		return out
	}
	var out []result.Check
	for _, prop := range props {
		switch prop {
		case "exactly_once":
			out = append(out, ev.exactlyOnce())
		case "stock_matches":
			out = append(out, ev.stockMatches())
		case "no_double_apply":
			out = append(out, ev.noDoubleApply())
		case "settled":
			out = append(out, ev.settled())
		case "converge_within":
			out = append(out, ev.converge())
		}
	}
	return out
}

func countCheck(c *result.Check, v *violations) {
	c.Figure, c.Op, c.Threshold, c.Unit = float64(v.n), "==", 0, "count"
	c.Passed = v.n == 0
	c.Detail = v.detail()
}

// exactlyOnce: every acknowledged key exists exactly once (with the id it was
// acknowledged with); no key has two orders; no order exists for a key that was only
// ever rejected, or for a key no client sent. An indeterminate key may have 0 or 1 order.
func (ev *evaluator) exactlyOnce() result.Check {
	c := ev.sub("exactly_once")
	byKey := map[string][]Order{}
	for _, o := range ev.final.Orders {
		byKey[o.Key] = append(byKey[o.Key], o)
	}
	var v violations
	var acked, rejected, indet, indetExist int
	for _, key := range sortedKeys(ev.keys) {
		k, orders := ev.keys[key], byKey[key]
		switch {
		case k.acked:
			acked++
		case k.indeterminate:
			indet++
			if len(orders) > 0 {
				indetExist++
			}
		default:
			rejected++
		}
		switch {
		case len(orders) > 1:
			v.add("duplicated", "key %s has %d orders (%s)", key, len(orders), orderIDs(orders))
		case k.acked && len(orders) == 0:
			v.add("acknowledged but lost", "order %s (key %s) was acknowledged but does not exist", k.orderID, key)
		case k.acked && orders[0].ID != k.orderID:
			v.add("stored under another id", "key %s was acknowledged as order %s but is stored as %s", key, k.orderID, orders[0].ID)
		case !k.acked && !k.indeterminate && len(orders) == 1:
			v.add("rejected but created", "order %s exists although every request with key %s was rejected", orders[0].ID, key)
		}
		if k.otherID != "" {
			v.add("acknowledged twice with different ids", "key %s was acknowledged as both %s and %s", key, k.orderID, k.otherID)
		}
	}
	for _, o := range ev.final.Orders {
		if _, sent := ev.keys[o.Key]; !sent {
			v.add("phantom", "order %s has key %q, which no client sent", o.ID, o.Key)
		}
	}
	countCheck(&c, &v)
	tally := fmt.Sprintf("%d acknowledged, %d rejected and %d indeterminate keys; %d of the indeterminate exist",
		acked, rejected, indet, indetExist)
	if v.n == 0 {
		c.Message = fmt.Sprintf("every acknowledged order exists exactly once and no rejected or unknown one does (%s)", tally)
	} else {
		c.Message = fmt.Sprintf("exactly-once violated %d times: %s (%s)", v.n, v.summary(), tally)
	}
	return c
}

func orderIDs(os []Order) string {
	ids := make([]string, len(os))
	for i, o := range os {
		ids[i] = o.ID
	}
	return strings.Join(ids, ", ")
}

// stockMatches: every product's stock equals its initial stock minus the quantities of
// the orders that exist for it and hold stock (every order but a rejected one), and is
// never below zero.
func (ev *evaluator) stockMatches() result.Check {
	c := ev.sub("stock_matches")
	ordered := map[string]int64{}
	for _, o := range ev.final.Orders {
		if holdsStock(o.State) {
			ordered[o.ProductID] += o.Quantity
		}
	}
	var v violations
	for _, id := range sortedKeys(ev.final.Products) {
		p := ev.final.Products[id]
		if p.Stock < 0 {
			v.add("products below zero", "product %s has stock %d: more was sold than there was", id, p.Stock)
		}
		if want := p.Initial - ordered[id]; p.Stock != want {
			v.add("products off", "product %s has stock %d, want %d (initial %d − %d ordered)", id, p.Stock, want, p.Initial, ordered[id])
		}
	}
	for _, id := range sortedKeys(ordered) {
		if _, ok := ev.final.Products[id]; !ok {
			v.add("unknown products ordered", "orders take %d of product %s, which does not exist", ordered[id], id)
		}
	}
	countCheck(&c, &v)
	if v.n == 0 {
		held := 0
		for _, o := range ev.final.Orders {
			if holdsStock(o.State) {
				held++
			}
		}
		c.Message = fmt.Sprintf("stock of all %d products equals initial stock minus the %d existing orders", len(ev.final.Products), held)
		if rejected := len(ev.final.Orders) - held; rejected > 0 {
			c.Message += fmt.Sprintf(" that were not rejected (%d rejected took none)", rejected)
		}
	} else {
		c.Message = fmt.Sprintf("stock does not match the orders: %s", v.summary())
	}
	return c
}

// noDoubleApply: every existing order has exactly one applied row, with its product and
// quantity, which took the stock once (or, for a rejected order, took none), and no row
// that took stock belongs to an order that does not exist. Redeliveries absorbed by the
// idempotency table (deliveries > 1) are fine and reported; a row that took its stock on
// several deliveries is the doubly applied event the check exists to name.
func (ev *evaluator) noDoubleApply() result.Check {
	c := ev.sub("no_double_apply")
	orders := make(map[string]Order, len(ev.final.Orders))
	for _, o := range ev.final.Orders {
		orders[o.ID] = o
	}
	rows := map[string]int{}
	var v violations
	var absorbed, redelivered int64
	compensated := 0
	for _, a := range ev.final.Applied {
		rows[a.OrderID]++
		if a.Deliveries > 1 {
			redelivered++
			absorbed += a.Deliveries - 1
		}
		o, ok := orders[a.OrderID]
		took := taken(a)
		switch {
		case !ok && took > 0:
			v.add("applied for no order", "stock was taken for order %s, which does not exist (%d of %s)", a.OrderID, took, a.ProductID)
		case !ok:
			// A refusal or a released reservation for an order that was never created: no
			// stock is held for it, which is what compensation is for.
			if a.State == StateReleased {
				compensated++
			}
		case rows[a.OrderID] == 2:
			v.add("applied twice", "order %s was applied more than once", a.OrderID)
		case a.Applications > 1 && took > 0:
			v.add("applied twice", "order %s took its stock %d times (%d of %s each; its event was delivered %d times)",
				a.OrderID, a.Applications, a.Quantity, a.ProductID, a.Deliveries)
		case rows[a.OrderID] == 1 && (a.ProductID != o.ProductID || a.Quantity != o.Quantity):
			v.add("applied wrongly", "order %s was applied as %d of %s, but is %d of %s", a.OrderID, a.Quantity, a.ProductID, o.Quantity, o.ProductID)
		case o.State == StateRejected && took > 0:
			v.add("rejected but applied", "order %s is rejected, yet took %d of %s", a.OrderID, took, a.ProductID)
		case o.State == StateConfirmed && took == 0:
			v.add("confirmed but not applied", "order %s is confirmed, yet its row is %s and took no stock", a.OrderID, a.State)
		}
	}
	for _, o := range ev.final.Orders {
		if rows[o.ID] == 0 {
			v.add("never applied", "order %s was never applied to stock", o.ID)
		}
	}
	countCheck(&c, &v)
	// Over every inventory event that arrived (one applied row each), not only the ones
	// that arrived more than once.
	dup := fmt.Sprintf("%d duplicate deliveries absorbed over %d events", absorbed, len(ev.final.Applied))
	if redelivered > 0 {
		dup += fmt.Sprintf(", %d of them delivered more than once", redelivered)
	}
	if v.n == 0 {
		c.Message = fmt.Sprintf("each of the %d orders was applied exactly once (%s)", len(ev.final.Orders), dup)
		if n := countState(ev.final.Orders, StateRejected); n > 0 {
			c.Message = fmt.Sprintf("each of the %d orders was applied exactly once, %d of them as a rejection that took no stock (%s)", len(ev.final.Orders), n, dup)
		}
	} else {
		c.Message = fmt.Sprintf("inventory events misapplied %d times: %s", v.n, v.summary())
	}
	if compensated > 0 {
		c.Message += fmt.Sprintf("; %d reservations of orders that never committed were released", compensated)
	}
	c.Detail = strings.TrimSpace(c.Detail + "\n" + dup)
	return c
}

// settled: every order the system holds ended confirmed or rejected, none pending, within
// the convergence bound (the final state is read until it converges or the bound passes);
// and per product, the confirmed quantities never exceed the initial stock, so stock never
// had to go below zero. A pending order that no applied row mentions is a lost event: the
// request to decide it never arrived.
func (ev *evaluator) settled() result.Check {
	c := ev.sub("settled")
	applied := map[string]bool{}
	for _, a := range ev.final.Applied {
		applied[a.OrderID] = true
	}
	var v violations
	var confirmed, rejected, pending, lost int
	confirmedQty := map[string]int64{}
	for _, o := range ev.final.Orders {
		switch o.State {
		case StateConfirmed, "":
			confirmed++
			confirmedQty[o.ProductID] += o.Quantity
		case StateRejected:
			rejected++
		case StatePending:
			pending++
			if applied[o.ID] {
				v.add("pending", "order %s (key %s) is still pending although it was decided: the decision never reached it", o.ID, o.Key)
			} else {
				lost++
				v.add("lost", "order %s (key %s) is still pending: its event was lost, nothing ever decided it", o.ID, o.Key)
			}
		default:
			v.add("in an unknown state", "order %s (key %s) is in state %q, neither confirmed, rejected nor pending", o.ID, o.Key, o.State)
		}
	}
	for _, id := range sortedKeys(confirmedQty) {
		p, ok := ev.final.Products[id]
		if ok && confirmedQty[id] > p.Initial {
			v.add("oversold", "product %s: %d confirmed of an initial stock of %d", id, confirmedQty[id], p.Initial)
		}
	}
	countCheck(&c, &v)
	tally := fmt.Sprintf("%d confirmed, %d rejected, %d pending", confirmed, rejected, pending)
	if v.n == 0 {
		c.Message = fmt.Sprintf("every order settled (%s) and no product sold more than its stock", tally)
	} else {
		c.Message = fmt.Sprintf("the saga did not settle: %s (%s)", v.summary(), tally)
	}
	if lost > 0 {
		c.Message += fmt.Sprintf("; %d inventory events lost", lost)
	}
	return c
}

// converge: the state converged within the bound after the last heal (docs/CHECKS.md).
func (ev *evaluator) converge() result.Check {
	c := ev.sub("converge_within")
	c.Op, c.Threshold, c.Unit = "<=", secs(ev.spec.ConvergeWithin.Std()), "s"
	if ev.convergedAfter < 0 {
		c.Figure, c.Never = -1, true
		c.Message = "stock and order states never converged after the last heal (within the bound the final state was read for)"
		return c
	}
	c.Figure = secs(ev.convergedAfter)
	c.Passed = c.Figure <= c.Threshold
	op := "<="
	if !c.Passed {
		op = ">"
	}
	c.Message = fmt.Sprintf("stock and order states converged %.2f s after the last heal, %s %.2f s", c.Figure, op, c.Threshold)
	return c
}

// secs is d in seconds, rounded to the millisecond, as the checks state durations.
func secs(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// sortedKeys lists m's keys in order, so that violations are listed the same way each run.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

var _ checks.FinalEvaluator = (*evaluator)(nil)
