package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/result"
)

// A check that could not be evaluated has no figure, and one whose awaited moment never
// came has no time: neither may print a number as if it had been measured.
func TestPrintResultNotEvaluatedAndNeverObserved(t *testing.T) {
	res := &result.Run{Scenario: "s", Verdict: result.Failed, Checks: []result.Check{
		{Name: "after/latency_p99", Skipped: true, Message: "no requests started after the last heal"},
		{Name: "after/breaker_closed/gateway->product", Never: true, Figure: -1, Op: "<=", Threshold: 3, Unit: "s",
			Message: "breaker gateway->product did not close after slow was healed"},
		{Name: "during:slow/error_rate", Figure: 0.25, Op: "<=", Threshold: 0.1, Unit: "ratio", Message: "error rate 25% > 10%"},
	}}
	var b bytes.Buffer
	printResult(&b, res, nil, nil)
	out := b.String()
	assert.Contains(t, out, "SKIPPED after/latency_p99: not evaluated — no requests started after the last heal")
	assert.Contains(t, out, "FAILED after/breaker_closed/gateway->product: never observed (want <= 3 s) — breaker gateway->product")
	assert.Contains(t, out, "FAILED during:slow/error_rate: 0.25 ratio > 0.1 ratio — error rate 25% > 10%")
	assert.NotContains(t, out, "0  vs 0")
	assert.NotContains(t, out, "-1 s")
}
