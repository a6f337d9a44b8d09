package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/sut"
)

// convergePoll is how often the system's state is read while its convergence is watched.
const convergePoll = 100 * time.Millisecond

// healPoll is how often the watch looks whether every fault has been healed.
const healPoll = 10 * time.Millisecond

// FinalState is the system's state after the load (see sut.FinalState); Order,
// ProductStock and Applied are its parts.
type (
	FinalState   = sut.FinalState
	Order        = sut.Order
	ProductStock = sut.ProductStock
	Applied      = sut.Applied
)

// convergeTracker decides when a live system's state converged, from snapshots read every
// convergePoll from the last heal on, while the load continues and after it.
//
// While orders are still placed, the state never adds up exactly at an instant: an order
// placed a millisecond before a read has not reached stock yet, and orders, stock and
// applied events are read one after the other. So a poll holds when everything the
// previous poll saw has settled: every order of the previous snapshot (of this one, for
// the first poll, which has none before it) was applied exactly once, with its product
// and quantity, and every product's stock is at most its initial stock minus the
// quantities of those orders that took stock (see settled). A system that records no
// applied events is judged by the stock bound alone. A read that fails does not hold.
//
// The state converged at the first poll of the last unbroken run of holding polls, if
// that run reaches a poll after the load (nothing new placed) at which every order read
// is applied, none is pending, and stock equals initial stock minus the quantities of
// every order not rejected, exactly (mismatch). The moment is therefore at most one poll
// late, and never earlier than the backlog left by the faults drained.
type convergeTracker struct {
	prev    []Order // the orders of the last successful read; nil before it
	holding bool
	since   time.Duration // first poll of the current run of holding polls
	polls   int
	reason  string // why the last poll did not hold, or why the state did not add up
}

// observe folds in one poll, read at at on the run's clock (err when it failed); quiet
// says the load has ended. It reports whether the state has converged.
func (c *convergeTracker) observe(at time.Duration, st FinalState, err error, quiet bool) bool {
	c.polls++
	if err != nil {
		c.holding, c.reason = false, err.Error()
		return false
	}
	prev := c.prev
	if prev == nil {
		prev = st.Orders
	}
	c.prev = st.Orders
	if msg := settled(prev, st); msg != "" {
		c.holding, c.reason = false, msg
		return false
	}
	if !c.holding {
		c.holding, c.since = true, at
	}
	if !quiet {
		c.reason = ""
		return false
	}
	// Every order now read must be applied too: an order still in flight could otherwise
	// hide an order applied twice from the stock comparison.
	if msg := settled(st.Orders, st); msg != "" {
		c.reason = msg
		return false
	}
	if msg := mismatch(st); msg != "" {
		c.reason = msg
		return false
	}
	return true
}

// settled returns "" when every order of prev is applied in st exactly once with its
// product and quantity and stock reflects them, else the first that is not. An order the
// saga rejected (or whose reservation was released) took no stock, so it does not lower
// the bound; an event whose outcome is not recorded counts as taking stock.
func settled(prev []Order, st FinalState) string {
	rows := make(map[string]int, len(st.Applied))
	byOrder := make(map[string]Applied, len(st.Applied))
	for _, a := range st.Applied {
		rows[a.OrderID]++
		byOrder[a.OrderID] = a
	}
	ordered := map[string]int64{}
	for _, o := range prev {
		if len(st.Applied) == 0 {
			ordered[o.Product] += o.Quantity
			continue
		}
		a, ok := byOrder[o.ID]
		switch {
		case !ok:
			return fmt.Sprintf("order %s is not applied to stock yet", o.ID)
		case rows[o.ID] > 1:
			return fmt.Sprintf("order %s is applied %d times", o.ID, rows[o.ID])
		case a.Applications > 1:
			return fmt.Sprintf("order %s took stock %d times", o.ID, a.Applications)
		case a.Product != o.Product || a.Quantity != o.Quantity:
			return fmt.Sprintf("order %s is applied as %d of %s, but is %d of %s", o.ID, a.Quantity, a.Product, o.Quantity, o.Product)
		}
		if a.Outcome != checks.StateRejected && a.Outcome != checks.StateReleased {
			ordered[o.Product] += o.Quantity
		}
	}
	for _, p := range st.Products {
		if p.Stock < 0 {
			return fmt.Sprintf("%s: stock %d, below zero", p.ID, p.Stock)
		}
		if most := p.Initial - ordered[p.ID]; p.Stock > most {
			return fmt.Sprintf("%s: stock %d, at most %d once its orders are not applied yet (initial %d - ordered %d)", p.ID, p.Stock, most, p.Initial, ordered[p.ID])
		}
	}
	return ""
}

// convergeWatch observes the state from the last heal on while the load runs.
type convergeWatch struct {
	tr   convergeTracker
	stop func()
}

// watchConvergence starts observing the system's state as soon as every fault of the
// scenario is healed, while the load continues; converge takes the observation over when
// the load ends. Without faults there is nothing to watch during the load: convergence
// then counts from the load's end.
func (r *runner) watchConvergence(ctx context.Context) *convergeWatch {
	w := &convergeWatch{stop: func() {}}
	state, ok := r.sys.(sut.StateReader)
	if len(r.sc.Faults) == 0 || !ok {
		return w
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !r.allHealed() {
			if !sleepUntil(wctx, time.Now().Add(healPoll)) {
				return
			}
		}
		for {
			began := time.Now()
			rctx, rcancel := context.WithTimeout(wctx, 5*time.Second)
			st, err := state.ReadFinalState(rctx)
			rcancel()
			if wctx.Err() != nil {
				return // stopped mid-read: the read says nothing about the system
			}
			w.tr.observe(r.since(), st, err, false)
			if !sleepUntil(wctx, time.Now().Add(watchInterval(w.tr.holding, time.Since(began)))) {
				return
			}
		}
	}()
	w.stop = func() { cancel(); <-done }
	return w
}

// watchInterval is the pause before the next read while the load runs. The moment a run
// of holding polls begins needs the fine interval; once the state holds, a break is still
// seen within a few polls. Reading every order costs the system work while it is under
// test, so the watch never spends more than a fifth of its time reading.
func watchInterval(holding bool, read time.Duration) time.Duration {
	d := convergePoll
	if holding {
		d = 5 * convergePoll
	}
	return max(d, 4*read)
}

// allHealed reports whether every fault of the scenario was injected and healed.
func (r *runner) allHealed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.faults {
		if f.Healed <= 0 {
			return false
		}
	}
	return len(r.faults) > 0
}

// converge stops the watch, then reads the state until it converged (see convergeTracker)
// or the bound after the load's end passes, and notes the outcome in the history.
func (r *runner) converge(ctx context.Context, w *convergeWatch) FinalState {
	w.stop()
	tr := &w.tr
	loadEnd := r.since()
	ref := loadEnd
	r.mu.Lock()
	if len(r.sc.Faults) > 0 && r.lastHeal > 0 {
		ref = r.lastHeal
	}
	r.mu.Unlock()
	state := r.sys.(sut.StateReader)
	deadline := time.Now().Add(r.o.convergeBound)
	var st FinalState
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := state.ReadFinalState(rctx)
		cancel()
		at := r.since()
		if err != nil {
			st.Err = err.Error()
		} else {
			st, st.Err = got, ""
		}
		if tr.observe(at, got, err, true) {
			st.Converged, st.ConvergedAt, st.ConvergedAfter = true, tr.since, max(tr.since-ref, 0)
			st.Mismatch = ""
			break
		}
		if err == nil {
			st.Mismatch = tr.reason
		}
		if time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(convergePoll)) {
			break
		}
	}
	note := history.NoteEvent("final state")
	note.Note.Attrs = map[string]string{
		"converged": fmt.Sprint(st.Converged), "converged_after": st.ConvergedAfter.String(),
		"polls":  fmt.Sprint(tr.polls),
		"orders": fmt.Sprint(len(st.Orders)), "applied": fmt.Sprint(len(st.Applied)),
	}
	if st.Converged {
		note.Note.Attrs["converged_at"] = (st.ConvergedAt - r.loadStart.Sub(r.began)).String() + " from the load's start"
	}
	if st.Mismatch != "" && !st.Converged {
		note.Note.Attrs["mismatch"] = st.Mismatch
	}
	if st.Err != "" {
		note.Note.Attrs["err"] = st.Err
	}
	_ = r.hist.Write(note)
	return st
}

// mismatch returns "" when no order is pending and every product's stock equals its
// initial stock minus the quantities of its orders that were not rejected, else what is
// still open: the pending orders, or the first product that does not add up.
func mismatch(st FinalState) string {
	ordered := map[string]int64{}
	pending := 0
	for _, o := range st.Orders {
		switch o.Status {
		case checks.StatePending:
			pending++
		case checks.StateRejected:
			continue
		}
		ordered[o.Product] += o.Quantity
	}
	if pending > 0 {
		return fmt.Sprintf("%d orders still pending", pending)
	}
	for _, p := range st.Products {
		if want := p.Initial - ordered[p.ID]; p.Stock != want {
			return fmt.Sprintf("%s: stock %d, want %d (initial %d - ordered %d)", p.ID, p.Stock, want, p.Initial, ordered[p.ID])
		}
	}
	return ""
}
