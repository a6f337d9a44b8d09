package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/sut"
)

// convergePoll is how often the system's state is read while its convergence is watched.
const convergePoll = 100 * time.Millisecond

// healPoll is how often the watch looks whether every fault has been healed.
const healPoll = 10 * time.Millisecond

// FinalState is what the harness saw of the system's state after the load: the last state
// its StateReader returned and whether, and when, that state converged.
type FinalState struct {
	// State is the last state read; nil when no read succeeded (or the system has no
	// state to read), which leaves the kinds that judge it skipped, not failed.
	State sut.State `json:"state,omitempty"`
	// Converged reports that the state converged before the bound; ConvergedAt is that
	// moment on the run's clock, ConvergedAfter how long after the last heal (after the
	// load's end when the run had no fault) it was.
	Converged      bool          `json:"converged"`
	ConvergedAt    time.Duration `json:"converged_at"`
	ConvergedAfter time.Duration `json:"converged_after"`
	// Mismatch describes the last difference seen when not converged.
	Mismatch string `json:"mismatch,omitempty"`
	// Err is why the state could not be read, if it could not.
	Err string `json:"err,omitempty"`
}

// convergeWatch observes the state from the last heal on while the load runs.
type convergeWatch struct {
	tr   sut.Convergence
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
			st, err := r.readState(rctx, state)
			rcancel()
			if wctx.Err() != nil {
				return // stopped mid-read: the read says nothing about the system
			}
			w.tr.Observe(r.since(), st, err, false)
			if !sleepUntil(wctx, time.Now().Add(watchInterval(w.tr.Holding(), time.Since(began)))) {
				return
			}
		}
	}()
	w.stop = func() { cancel(); <-done }
	return w
}

// watchInterval is the pause before the next read while the load runs. The moment a run
// of holding polls begins needs the fine interval; once the state holds, a break is still
// seen within a few polls. Reading the whole state costs the system work while it is
// under test, so the watch never spends more than a fifth of its time reading.
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

// converge stops the watch, then reads the state until it converged (see sut.Convergence)
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
		got, err := r.readState(rctx, state)
		cancel()
		at := r.since()
		if err == nil && got == nil {
			err = sut.ErrNoState
		}
		if err != nil {
			st.Err = err.Error()
		} else {
			st.State, st.Err = got, ""
		}
		if tr.Observe(at, got, err, true) {
			st.Converged, st.ConvergedAt, st.ConvergedAfter = true, tr.Since(), max(tr.Since()-ref, 0)
			st.Mismatch = ""
			break
		}
		if err == nil {
			st.Mismatch = tr.Reason()
		}
		if time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(convergePoll)) {
			break
		}
	}
	note := history.NoteEvent("final state")
	note.Note.Attrs = map[string]string{
		"converged": fmt.Sprint(st.Converged), "converged_after": st.ConvergedAfter.String(),
		"polls": fmt.Sprint(tr.Polls()),
	}
	if st.State != nil {
		for k, v := range st.State.Summary() {
			note.Note.Attrs[k] = v
		}
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

// readState reads the system's state, from the run's baseline when it has one (see
// WithStarted and sut.Rebaser).
func (r *runner) readState(ctx context.Context, sr sut.StateReader) (sut.State, error) {
	st, err := sr.ReadState(ctx)
	if err != nil || st == nil || r.base == nil {
		return st, err
	}
	if rb, ok := st.(sut.Rebaser); ok {
		return rb.Rebase(r.base), nil
	}
	return st, nil
}

// readBase reads the state a run on a started system is judged from: everything earlier
// runs left in it is not this run's. Without it (no state, or no Rebaser) the state is
// judged whole.
func (r *runner) readBase(ctx context.Context) {
	sr, ok := r.sys.(sut.StateReader)
	if r.o.started == nil || !ok {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := sr.ReadState(rctx)
	if err != nil {
		r.o.log.Warn("read the baseline state", "err", err)
		return
	}
	if _, ok := st.(sut.Rebaser); ok {
		r.base = st
	}
}
