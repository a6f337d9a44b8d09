// Package history is the one append-only record of a run: every request outcome, fault
// injection and heal, phase boundary, scraped metric sample and note, as JSON lines stamped
// on one clock (the offset from the run's start). The harness writes it while the run goes;
// checks and reports stream it back one event at a time, so no part of Faultline ever needs
// a whole run in memory, and a run killed midway still leaves a readable prefix.
package history

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/loadgen"
)

// Kind says which payload an event carries.
type Kind string

// Event kinds.
const (
	KindRequest Kind = "request"
	KindFault   Kind = "fault"
	KindPhase   Kind = "phase"
	KindMetric  Kind = "metric"
	KindNote    Kind = "note"
)

// Event is one line of the history. Exactly the payload named by Kind is set.
type Event struct {
	// T is the offset from the run's start, in nanoseconds on the wire.
	T       time.Duration   `json:"t"`
	Kind    Kind            `json:"kind"`
	Request *loadgen.Result `json:"request,omitempty"`
	Fault   *Fault          `json:"fault,omitempty"`
	Phase   *Phase          `json:"phase,omitempty"`
	Metric  *Metric         `json:"metric,omitempty"`
	Note    *Note           `json:"note,omitempty"`
}

// FaultAction is what happened to a fault.
type FaultAction string

// Fault actions.
const (
	FaultInject FaultAction = "inject"
	FaultHeal   FaultAction = "heal"
)

// Effect is one measurable quantity of a fault, configured or measured, so a check can tell
// a fault that landed from one that did nothing (or far too much).
type Effect struct {
	Quantity string  `json:"quantity"` // what is measured: "added_latency", "reachable"
	Value    float64 `json:"value"`
	Unit     string  `json:"unit,omitempty"` // "s", "bytes/s", ""
}

// Fault records one injection or heal.
type Fault struct {
	Action     FaultAction       `json:"action"`
	Name       string            `json:"name"`   // the scenario's name for the fault
	Type       string            `json:"type"`   // latency, timeout, down, crash, pause, partition…
	Target     string            `json:"target"` // a link "order->product-2", a component, a partition
	Params     map[string]string `json:"params,omitempty"`
	Configured *Effect           `json:"configured,omitempty"`
	Measured   *Effect           `json:"measured,omitempty"`
	Error      string            `json:"error,omitempty"` // the action itself failed
}

// PhaseEdge marks the start or the end of a phase.
type PhaseEdge string

// Phase edges.
const (
	PhaseStart PhaseEdge = "start"
	PhaseEnd   PhaseEdge = "end"
)

// Phase records a phase boundary (steady state, fault, recovery…); checks evaluate
// expectations per phase between a start and its end.
type Phase struct {
	Name string    `json:"name"`
	Edge PhaseEdge `json:"edge"`
}

// Metric is one scraped sample of one component.
type Metric struct {
	Component string            `json:"component"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	Value     float64           `json:"value"`
}

// LabelString writes labels as {k=v,...} sorted by name ("" for none): the text that,
// after the component and metric name, tells one series from another.
func LabelString(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	kv := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		kv = append(kv, k+"="+labels[k])
	}
	return "{" + strings.Join(kv, ",") + "}"
}

// Note is free text for people reading the record (why a run was declared invalid, a
// manual fault from a workshop).
type Note struct {
	Text  string            `json:"text"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

// RequestEvent wraps a load generator result.
func RequestEvent(r loadgen.Result) Event { return Event{Kind: KindRequest, Request: &r} }

// FaultEvent wraps a fault record.
func FaultEvent(f Fault) Event { return Event{Kind: KindFault, Fault: &f} }

// PhaseEvent marks a phase boundary.
func PhaseEvent(name string, edge PhaseEdge) Event {
	return Event{Kind: KindPhase, Phase: &Phase{Name: name, Edge: edge}}
}

// MetricEvent wraps a metric sample.
func MetricEvent(m Metric) Event { return Event{Kind: KindMetric, Metric: &m} }

// NoteEvent wraps a note.
func NoteEvent(text string) Event { return Event{Kind: KindNote, Note: &Note{Text: text}} }

// AsRequest returns the request payload, if e is a request event.
func (e Event) AsRequest() (loadgen.Result, bool) {
	if e.Kind != KindRequest || e.Request == nil {
		return loadgen.Result{}, false
	}
	return *e.Request, true
}

// AsFault returns the fault payload, if e is a fault event.
func (e Event) AsFault() (Fault, bool) {
	if e.Kind != KindFault || e.Fault == nil {
		return Fault{}, false
	}
	return *e.Fault, true
}

// AsPhase returns the phase payload, if e is a phase event.
func (e Event) AsPhase() (Phase, bool) {
	if e.Kind != KindPhase || e.Phase == nil {
		return Phase{}, false
	}
	return *e.Phase, true
}

// AsMetric returns the metric payload, if e is a metric event.
func (e Event) AsMetric() (Metric, bool) {
	if e.Kind != KindMetric || e.Metric == nil {
		return Metric{}, false
	}
	return *e.Metric, true
}

// AsNote returns the note payload, if e is a note event.
func (e Event) AsNote() (Note, bool) {
	if e.Kind != KindNote || e.Note == nil {
		return Note{}, false
	}
	return *e.Note, true
}

// check reports an event whose kind and payload disagree.
func (e Event) check() error {
	var ok bool
	switch e.Kind {
	case KindRequest:
		ok = e.Request != nil
	case KindFault:
		ok = e.Fault != nil
	case KindPhase:
		ok = e.Phase != nil
	case KindMetric:
		ok = e.Metric != nil
	case KindNote:
		ok = e.Note != nil
	case "":
		return errMissingKind
	default:
		return nil // a kind from a newer harness: pass it through
	}
	if !ok {
		return &payloadError{kind: e.Kind}
	}
	return nil
}
