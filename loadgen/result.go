package loadgen

import (
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Result is one request as it completed: the schedule's view of it (what was planned) next
// to what happened. It is the record the checks read back from a run's history, so it
// carries every identifier they join on: the idempotency key, the id of what the request
// created, and the attributes its journey noted.
type Result struct {
	Seq       uint64        `json:"seq"`
	Journey   string        `json:"journey"`
	Performed string        `json:"performed,omitempty"` // journey actually performed, when different
	Client    int           `json:"client"`
	Method    string        `json:"method"`
	Path      string        `json:"path"`
	Planned   time.Duration `json:"planned"` // planned start offset
	Start     time.Duration `json:"start"`   // actual start offset
	Latency   time.Duration `json:"latency"`
	Status    int           `json:"status"` // 0 when no response arrived
	OK        bool          `json:"ok"`     // the journey counts the answer as a success
	Error     string        `json:"error,omitempty"`
	Key       string        `json:"key,omitempty"` // idempotency key
	// Created is the id the system gave what an acknowledged request created, as its
	// journey read it from the answer (Observe); a read of that thing may carry it too.
	Created string `json:"created,omitempty"`
	// Attrs are the plan's (Plan.Attrs): what the journey noted about the request.
	Attrs    map[string]string `json:"attrs,omitempty"`
	Ref      uint64            `json:"ref,omitempty"`       // Seq of the request a retry repeats
	Target   string            `json:"target,omitempty"`    // base URL it was sent to; empty for an absolute URL
	ServedBy string            `json:"served_by,omitempty"` // X-Served-By
	Fallback string            `json:"fallback,omitempty"`  // X-Fallback
	Replayed bool              `json:"replayed,omitempty"`  // Idempotent-Replayed: true
	BytesOut uint64            `json:"bytes_out,omitempty"`
	BytesIn  uint64            `json:"bytes_in,omitempty"`
	// Cut marks a request the load's stop (its context ending: a console's finish, a ^C)
	// aborted before any answer. What it did is unknown and the system was not given the
	// time to answer: it stays in the record but is judged neither a success nor a failure.
	Cut bool `json:"cut,omitempty"`
}

// Failed reports whether the request failed as its journey judges it: no answer, or an
// answer the journey's Observe did not count as a success (a 404 of a read, a 409 of a
// purchase). It is the one rule behind every count of failed requests: the live progress,
// the error_rate checks and abort_when. Acknowledged, Rejected and Indeterminate answer a
// different question, what the request did to the system's state. A cut request is no
// failure of the system (see Cut): judges of error rates and latencies leave it out.
func (r Result) Failed() bool { return !r.OK && !r.Cut }

// Acknowledged reports a 2xx answer: the system promised the effect happened.
func (r Result) Acknowledged() bool { return r.Status >= 200 && r.Status < 300 }

// Rejected reports a 4xx answer: the system promised the effect did not happen.
func (r Result) Rejected() bool { return r.Status >= 400 && r.Status < 500 }

// Indeterminate reports a request whose effect is unknown: no answer, or a 5xx (the
// system may have acted before failing). Consistency checks must allow either outcome.
func (r Result) Indeterminate() bool { return r.Status == 0 || r.Status >= 500 }

// End returns the offset at which the request completed.
func (r Result) End() time.Duration { return r.Start + r.Latency }

// Latency summarises a latency distribution.
type Latency struct {
	Mean time.Duration `json:"mean"`
	P50  time.Duration `json:"p50"`
	P90  time.Duration `json:"p90"`
	P95  time.Duration `json:"p95"`
	P99  time.Duration `json:"p99"`
	Max  time.Duration `json:"max"`
}

// latencies accumulates a distribution in bounded memory (vegeta's t-digest).
type latencies struct {
	m vegeta.LatencyMetrics
	n uint64
}

func (l *latencies) add(d time.Duration) { l.m.Add(d); l.n++ }

func (l *latencies) summary() Latency {
	if l.n == 0 {
		return Latency{}
	}
	return Latency{
		Mean: time.Duration(float64(l.m.Total) / float64(l.n)),
		P50:  l.m.Quantile(0.50), P90: l.m.Quantile(0.90),
		P95: l.m.Quantile(0.95), P99: l.m.Quantile(0.99),
		Max: l.m.Max,
	}
}

// JourneySummary aggregates one journey's requests.
type JourneySummary struct {
	Count    uint64         `json:"count"`
	OK       uint64         `json:"ok"`
	Statuses map[int]uint64 `json:"statuses"`
	Latency  Latency        `json:"latency"`
}

// Window compares the plan with what was sent during one second of the load.
type Window struct {
	Planned uint64 `json:"planned"` // requests due in the window
	Issued  uint64 `json:"issued"`  // requests that actually started in it
}

// Summary aggregates a run as it goes, in memory independent of its length.
type Summary struct {
	Began     time.Time     `json:"began"`
	Elapsed   time.Duration `json:"elapsed"`   // start to last completion
	Cancelled bool          `json:"cancelled"` // the context ended the load early
	Planned   uint64        `json:"planned"`   // requests in the whole plan
	Due       uint64        `json:"due"`       // requests due before the load stopped
	Issued    uint64        `json:"issued"`    // requests sent
	OK        uint64        `json:"ok"`
	// PlannedRate and AchievedRate are requests per second over the load's active window.
	PlannedRate  float64                    `json:"planned_rate"`
	AchievedRate float64                    `json:"achieved_rate"`
	Lag          Latency                    `json:"lag"` // actual minus planned start
	Latency      Latency                    `json:"latency"`
	Statuses     map[int]uint64             `json:"statuses"`
	Errors       map[string]uint64          `json:"errors"`        // by ErrorClass; at most 32 classes, then "other"
	Cut          uint64                     `json:"cut,omitempty"` // requests the stop aborted (Result.Cut), counted in Issued and Errors too
	Journeys     map[string]*JourneySummary `json:"journeys"`
	Windows      []Window                   `json:"windows"` // one per second of the plan
}

// MinRateShare is the share of the requests due that a load must send for a run to count.
// The load is open-model: requests leave at planned times whatever the system does, so a
// load that sent less was paced by the harness (too few workers, a starved machine), not
// by the system, and the run cannot show how the system behaves at the planned rate.
// 0.9 leaves room for the last requests of a load cut at its end and for a scheduler's
// jitter on a loaded machine, and for nothing else. It is the one rule: the harness's
// verdict and checks' default throughput floor both apply it through FellShort.
const MinRateShare = 0.9

// FellShort reports whether a load that sent sent of due requests (or sent at a rate of
// sent against a planned due) fell short of MinRateShare. Nothing due is short: a run
// without load shows nothing.
func FellShort(sent, due float64) bool { return due <= 0 || sent < MinRateShare*due }

// FellShort reports whether the load sent less than MinRateShare of the requests due.
func (s Summary) FellShort() bool { return FellShort(float64(s.Issued), float64(s.Due)) }

// RateReached reports whether the load sent at least (1-tolerance) of the requests due:
// a run whose load fell short cannot show how the system behaves at the planned rate.
func (s Summary) RateReached(tolerance float64) bool {
	if s.Due == 0 {
		return false
	}
	return float64(s.Issued) >= (1-tolerance)*float64(s.Due)
}

const maxErrorKinds = 32

// aggregator builds a Summary from results; used from one goroutine.
type aggregator struct {
	s        Summary
	lat, lag latencies
	journeys map[string]*latencies
}

func newAggregator(p *Pacer) *aggregator {
	a := &aggregator{
		s: Summary{
			Planned:  p.Planned(),
			Statuses: map[int]uint64{},
			Errors:   map[string]uint64{},
			Journeys: map[string]*JourneySummary{},
		},
		journeys: map[string]*latencies{},
	}
	n := int(min(math.Ceil(p.Duration().Seconds()), 24*3600))
	a.s.Windows = make([]Window, max(n, 1))
	for i := range a.s.Windows {
		a.s.Windows[i].Planned = p.DueBy(time.Duration(i+1)*time.Second) - p.DueBy(time.Duration(i)*time.Second)
	}
	return a
}

func (a *aggregator) add(r *Result, start time.Duration) {
	s := &a.s
	s.Issued++
	if r.OK {
		s.OK++
	}
	if r.Cut {
		s.Cut++
	}
	s.Statuses[r.Status]++
	a.lat.add(r.Latency)
	a.lag.add(max(start-r.Planned, 0))
	if r.Error != "" {
		key := ErrorClass(r.Error)
		if _, ok := s.Errors[key]; !ok && len(s.Errors) >= maxErrorKinds {
			key = "other"
		}
		s.Errors[key]++
	}
	js := s.Journeys[r.Journey]
	if js == nil {
		js = &JourneySummary{Statuses: map[int]uint64{}}
		s.Journeys[r.Journey] = js
		a.journeys[r.Journey] = &latencies{}
	}
	js.Count++
	if r.OK {
		js.OK++
	}
	js.Statuses[r.Status]++
	a.journeys[r.Journey].add(r.Latency)
	w := min(int(max(start, 0)/time.Second), len(s.Windows)-1)
	s.Windows[w].Issued++
	if end := start + r.Latency; end > s.Elapsed {
		s.Elapsed = end
	}
}

func (a *aggregator) summary(active time.Duration) Summary {
	s := a.s
	s.Latency, s.Lag = a.lat.summary(), a.lag.summary()
	for _, name := range slices.Collect(maps.Keys(s.Journeys)) {
		s.Journeys[name].Latency = a.journeys[name].summary()
	}
	if secs := active.Seconds(); secs > 0 {
		s.PlannedRate = float64(s.Due) / secs
		s.AchievedRate = float64(s.Issued) / secs
	}
	return s
}

// ErrorClass sorts a transport error into a few kinds (timeout, canceled, refused, reset,
// eof), so that a summary counts kinds of failure rather than every distinct message.
// Messages of no known kind are their own class.
func ErrorClass(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case m == "":
		return ""
	case strings.Contains(m, "timeout") || strings.Contains(m, "deadline exceeded"):
		return "timeout"
	case strings.Contains(m, "context canceled") || strings.Contains(m, "request canceled"):
		return "canceled"
	case strings.Contains(m, "connection refused"):
		return "refused"
	case strings.Contains(m, "connection reset") || strings.Contains(m, "broken pipe"):
		return "reset"
	case strings.HasSuffix(m, "eof"):
		return "eof"
	}
	return msg
}
