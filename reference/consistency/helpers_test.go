package consistency_test

import (
	"time"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/checks/checkstest"
	"github.com/faultline-dev/faultline/reference/consistency"
)

const (
	sec = time.Second
	ms  = time.Millisecond
)

type reqOpt = checkstest.ReqOpt

// The fixture run and its builders are checkstest's, shared with the tests of check kinds
// registered outside checks.
var (
	slowFault    = checkstest.SlowFault
	scenario     = checkstest.Scenario
	check        = checkstest.Check
	named        = checkstest.Named
	journey      = checkstest.Journey
	status       = checkstest.Status
	failed       = checkstest.Failed
	place        = checkstest.Place
	req          = checkstest.Req
	writeHistory = checkstest.WriteHistory
	inputs       = checkstest.Inputs
	evaluate     = checkstest.Evaluate
	one          = checkstest.One
)

// final is the harness's view of st: the state, and when it converged (negative: never).
func final(st *consistency.State, convergedAfter time.Duration) *checks.Final {
	return &checks.Final{State: st, ConvergedAfter: convergedAfter}
}
