package consistency

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/sut"
)

// The convergence rule (docs/CHECKS.md) at its cases: the harness's watch (sut.Convergence)
// over this package's State, polled as a run polls it.

// liveSystem simulates the reference system's state under load: orders are placed at a
// steady pace and each is applied to stock lag after it was placed; orders placed before
// backlogUntil are applied only at backlogUntil (a broker outage healed then).
type liveSystem struct {
	every, lag   time.Duration
	backlogUntil time.Duration
	loadEnd      time.Duration
	lost         string // an order id whose event is never applied
	double       string // an order id applied twice to stock
	stock        int64  // initial stock (1000 when 0); orders beyond it are rejected (saga)
}

func (s liveSystem) at(t time.Duration) *State {
	initial := s.stock
	if initial == 0 {
		initial = 1000
	}
	p1 := Product{Initial: initial, Stock: initial}
	st := &State{}
	for i, placed := 0, time.Duration(0); placed <= min(t, s.loadEnd); i, placed = i+1, placed+s.every {
		id := fmt.Sprintf("o%d", i)
		st.Orders = append(st.Orders, Order{ID: id, Key: "k" + id, ProductID: "p1", Quantity: 1, State: StatePending})
		applied := placed + s.lag
		if placed < s.backlogUntil {
			applied = max(applied, s.backlogUntil)
		}
		if applied > t || id == s.lost {
			continue
		}
		o := &st.Orders[len(st.Orders)-1]
		if p1.Stock < 1 {
			o.State = StateRejected
			st.Applied = append(st.Applied, Applied{OrderID: id, ProductID: "p1", Quantity: 1, Deliveries: 1, State: StateRejected})
			continue
		}
		o.State = StateConfirmed
		st.Applied = append(st.Applied, Applied{OrderID: id, ProductID: "p1", Quantity: 1, Deliveries: 1, State: StateConfirmed, Applications: 1})
		p1.Stock--
		if id == s.double {
			p1.Stock--
		}
	}
	st.Products = map[string]Product{"p1": p1}
	return st
}

// observeRun polls sys every poll from from until the tracker says it converged or until
// bound after the load's end, as the harness does, and returns when it converged.
func observeRun(sys liveSystem, from, poll, bound time.Duration, readErrAt time.Duration) (time.Duration, bool) {
	var tr sut.Convergence
	for at := from; at <= sys.loadEnd+bound; at += poll {
		var err error
		if readErrAt > 0 && at == readErrAt {
			err = errors.New("read final state: unavailable")
		}
		if tr.Observe(at, sys.at(at), err, at > sys.loadEnd) {
			return tr.Since(), true
		}
	}
	return 0, false
}

// The run: the last heal at 5 s, load until 17 s. The state is consistent (each
// order applied 30 ms after it was placed) from the heal on; it must be seen converging
// then, not at the end of the load.
func TestConvergenceObservedDuringTheLoad(t *testing.T) {
	const poll = 200 * time.Millisecond
	base := liveSystem{every: 25 * time.Millisecond, lag: 30 * time.Millisecond, loadEnd: 17 * time.Second}
	withBacklog := base
	withBacklog.backlogUntil = 6500 * time.Millisecond
	lost := base
	lost.lost = "o300"
	double := base
	double.double = "o300"
	oversold := base
	oversold.stock = 100
	tests := []struct {
		name      string
		sys       liveSystem
		readErrAt time.Duration
		converged bool
		at        time.Duration
	}{
		{"consistent from the heal", base, 0, true, 5220 * time.Millisecond},
		{"oversubscribed: the saga rejects what stock cannot hold", oversold, 0, true, 5220 * time.Millisecond},
		{"a backlog drained 1.5 s after the heal", withBacklog, 0, true, 6620 * time.Millisecond},
		{"a failed read restarts the observation", base, 7020 * time.Millisecond, true, 7220 * time.Millisecond},
		{"an event never applied", lost, 0, false, 0},
		{"an event applied twice", double, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, ok := observeRun(tt.sys, 5020*time.Millisecond, poll, 10*time.Second, tt.readErrAt)
			assert.Equal(t, tt.converged, ok)
			assert.Equal(t, tt.at, at)
		})
	}
}

// The first poll has no earlier snapshot: every order it reads must already be applied.
func TestConvergenceFirstPollIsStrict(t *testing.T) {
	var tr sut.Convergence
	st := liveSystem{every: 25 * time.Millisecond, lag: 30 * time.Millisecond, loadEnd: 10 * time.Second}.at(5 * time.Second)
	assert.False(t, tr.Observe(5*time.Second, st, nil, false))
	assert.False(t, tr.Holding(), "the orders of the last 30 ms are not applied yet")
	assert.Contains(t, tr.Reason(), "not applied")
}
