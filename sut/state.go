package sut

import (
	"errors"
	"time"
)

// State is a system's own state as a StateReader read it, during the load and after it.
// The harness knows nothing of what it holds: it watches the system converge after the
// last heal by asking each read whether it holds (Holds) and, once nothing new arrives,
// whether it adds up exactly (Mismatch), and hands the last read to the check kinds that
// judge it (checks.FinalJudge), which know its concrete type. It should marshal to JSON,
// for a report to show.
type State interface {
	// Holds returns "" when everything prev saw has settled in this state, else the
	// first thing that has not: a poll while the load still runs can only hold for what
	// an earlier poll saw, since work begun a moment before the read is still under way.
	// prev is a state of the same system, the receiver itself for the first poll.
	Holds(prev State) string
	// Mismatch returns "" when the state has converged once no new work arrives: nothing
	// left in flight and everything adds up exactly; else what is still open, in one line.
	Mismatch() string
	// Summary gives a few figures of the state ("items": "120") for the run's history.
	Summary() map[string]string
}

// Rebaser is a State that can be judged from a baseline: Rebase returns what of the
// receiver is new since base (an earlier state of the same system that had converged), as a
// state of its own that adds up exactly when that new work does. A system kept running
// across several runs (an explorer's trials) is judged run by run this way; a state
// without it is judged whole.
type Rebaser interface {
	Rebase(base State) State
}

// ErrNoState is a read that returned neither a state nor an error.
var ErrNoState = errors.New("read state: the system returned none")

// Convergence decides when a live system's state converged, from snapshots read
// every poll from the last heal on, while the load continues and after it.
//
// While the load runs, a system's state never adds up exactly at an instant: work begun a
// moment before a read is still under way, and a state may be read in several parts one
// after the other. So a poll holds when everything the previous poll saw has settled
// (State's Holds, given the previous snapshot; this one, for the first poll, which has
// none before it). A read that fails does not hold.
//
// The state converged at the first poll of the last unbroken run of holding polls, if
// that run reaches a poll after the load (nothing new begun) at which the state adds up
// exactly (its Mismatch is empty). The moment is therefore at most one poll late, and
// never earlier than the backlog left by the faults drained.
type Convergence struct {
	prev    State // the last successful read; nil before it
	holding bool
	since   time.Duration // first poll of the current run of holding polls
	polls   int
	reason  string // why the last poll did not hold, or why the state did not add up
}

// Observe folds in one poll, read at at on the run's clock (err when it failed); quiet
// says the load has ended. It reports whether the state has converged.
func (c *Convergence) Observe(at time.Duration, st State, err error, quiet bool) bool {
	c.polls++
	if err == nil && st == nil {
		err = ErrNoState
	}
	if err != nil {
		c.holding, c.reason = false, err.Error()
		return false
	}
	prev := c.prev
	if prev == nil {
		prev = st
	}
	c.prev = st
	if msg := st.Holds(prev); msg != "" {
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
	if msg := st.Mismatch(); msg != "" {
		c.reason = msg
		return false
	}
	return true
}

// Holding reports whether the last poll held.
func (c *Convergence) Holding() bool { return c.holding }

// Since is the first poll of the current run of holding polls: once Observe reported
// convergence, the moment the state converged.
func (c *Convergence) Since() time.Duration { return c.since }

// Polls counts the polls observed.
func (c *Convergence) Polls() int { return c.polls }

// Reason is why the last poll did not hold, or why the state did not add up.
func (c *Convergence) Reason() string { return c.reason }
