package loadgen_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/loadgen"
)

// TestFellShortAtTheBoundary: exactly MinRateShare of the requests due is enough, a
// request less is short, and a load with nothing due is short.
func TestFellShortAtTheBoundary(t *testing.T) {
	tests := []struct {
		name      string
		sent, due float64
		want      bool
	}{
		{"all sent", 100, 100, false},
		{"more than due", 101, 100, false},
		{"exactly the share", 90, 100, false},
		{"just under the share", 89.99, 100, true},
		{"one request short of the share", 89, 100, true},
		{"rates: 45 of 50 req/s", 45, 50, false},
		{"rates: 44.9 of 50 req/s", 44.9, 50, true},
		{"nothing sent", 0, 100, true},
		{"nothing due", 0, 0, true},
		{"negative due", 5, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, loadgen.FellShort(tt.sent, tt.due))
		})
	}
}

// TestSummaryFellShortCountsRequests: a summary applies the same rule to the requests it
// issued against those due.
func TestSummaryFellShortCountsRequests(t *testing.T) {
	tests := []struct {
		issued, due uint64
		want        bool
	}{
		{900, 1000, false},
		{899, 1000, true},
		{9, 10, false},
		{8, 10, true},
		{0, 0, true},
	}
	for _, tt := range tests {
		got := loadgen.Summary{Issued: tt.issued, Due: tt.due}.FellShort()
		assert.Equal(t, tt.want, got, "%d of %d", tt.issued, tt.due)
	}
}

// TestResultFailed: a request failed when its journey did not count the answer as a
// success, whatever the status: the journey, not the status class, decides.
func TestResultFailed(t *testing.T) {
	tests := []struct {
		name string
		r    loadgen.Result
		want bool
	}{
		{"2xx counted ok", loadgen.Result{Status: 200, OK: true}, false},
		{"201 counted ok", loadgen.Result{Status: 201, OK: true}, false},
		{"2xx the journey refused", loadgen.Result{Status: 200, OK: false}, true},
		{"404 of a read", loadgen.Result{Status: 404}, true},
		{"409 of a purchase", loadgen.Result{Status: 409}, true},
		{"a 404 a journey expects", loadgen.Result{Status: 404, OK: true}, false},
		{"5xx", loadgen.Result{Status: 503}, true},
		{"no answer", loadgen.Result{Status: 0, Error: "timeout"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.r.Failed())
		})
	}
}
