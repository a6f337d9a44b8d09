package harness

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/sut"
)

// bare is a system under test with no process control at all.
type bare struct{ sut.System }

// killable can kill and nothing else.
type killable struct{ bare }

var errKilled = errors.New("killed")

func (killable) Kill(string) error { return errKilled }

// TestControlsOfAPartialSystem: process faults reach the controls a system has, and the
// ones it lacks fail with an error naming what the system cannot do.
func TestControlsOfAPartialSystem(t *testing.T) {
	tests := []struct {
		name string
		sys  sut.System
		op   func(p faults.Processes) error
		want string
	}{
		{"kill without Killer", bare{}, func(p faults.Processes) error {
			return p.Kill("a")
		}, "kill a: the system under test cannot kill its instances"},
		{"pause without Pauser", killable{}, func(p faults.Processes) error {
			return p.Pause("a")
		}, "pause a: the system under test cannot pause its instances"},
		{"restart without Restarter", killable{}, func(p faults.Processes) error {
			return p.Restart(t.Context(), "a")
		}, "restart a: the system under test cannot restart its instances"},
		{"delete without Deleter", killable{}, func(p faults.Processes) error {
			d, ok := p.(faults.Deleter)
			if !ok {
				return errors.New("no Deleter to ask")
			}
			if d.CanDelete("a") || d.InstanceID("a") != "" {
				return errors.New("a system without Deleter claims it can delete")
			}
			return d.Delete(t.Context(), "a")
		}, "delete a: the system under test cannot delete its instances"},
		{"kill with Killer", killable{}, func(p faults.Processes) error {
			return p.Kill("a")
		}, errKilled.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.op(controls(tt.sys))
			assert.EqualError(t, got, tt.want)
		})
	}
}
