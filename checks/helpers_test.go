package checks_test

import (
	"maps"
	"slices"
	"time"

	"github.com/faultline-dev/faultline/checks/checkstest"
	"github.com/faultline-dev/faultline/result"
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
	cut          = checkstest.Cut
	place        = checkstest.Place
	req          = checkstest.Req
	writeHistory = checkstest.WriteHistory
	inputs       = checkstest.Inputs
	evaluate     = checkstest.Evaluate
	one          = checkstest.One
)

var (
	fallback = checkstest.Fallback
	path     = checkstest.Path
	sample   = checkstest.Sample
)

func keys(m map[string]result.Check) []string { return slices.Sorted(maps.Keys(m)) }

func ptr[T any](v T) *T { return &v }
