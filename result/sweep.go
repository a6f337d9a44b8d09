package result

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// SweepVersion is the version of sweep.json; readers refuse a newer one.
const SweepVersion = 1

// Sweep is a load sweep: every design of a comparison run at each offered rate, with and
// without the scenario's faults, reduced to one curve per design and mode (sweep.json).
// It is what faultline compare --rates writes and what the sweep chart is drawn from.
type Sweep struct {
	Version  int       `json:"version"`
	Scenario string    `json:"scenario"`
	Rates    []float64 `json:"rates"` // offered rates, requests/s, ascending
	// WindowStartMS and WindowEndMS bound, from load start, the requests every point
	// measures: the scenario's fault window (the same span in the runs without faults, so
	// the two curves compare like with like), or the whole load when it has no faults.
	WindowStartMS float64       `json:"window_start_ms"`
	WindowEndMS   float64       `json:"window_end_ms"`
	Bounds        SweepBounds   `json:"bounds"`
	Harness       SweepHarness  `json:"harness"`
	Designs       []SweepDesign `json:"designs"`
}

// SweepBounds are the bounds a knee is found against, and where each came from (a
// scenario check, a flag, a default), so a reader knows what "left its bound" means.
type SweepBounds struct {
	P99MS           float64 `json:"p99_ms"`
	P99Source       string  `json:"p99_source"`
	ErrorRate       float64 `json:"error_rate"`
	ErrorRateSource string  `json:"error_rate_source"`
}

// SweepHarness are the limits beyond which a point shows the harness's saturation rather
// than the system's: such a point is invalid and left out of knee detection.
type SweepHarness struct {
	MinRateShare float64 `json:"min_rate_share"` // sent/due below this: the generator fell behind
	MaxLagP99MS  float64 `json:"max_lag_p99_ms"` // scheduling lag p99 above this: it fell behind
	BusyCPU      float64 `json:"busy_cpu"`       // machine CPU share at or above which a point is flagged busy
	CPUs         int     `json:"cpus"`
}

// SweepDesign is one design's curves: one with the scenario's faults, one without.
type SweepDesign struct {
	Design string       `json:"design"`
	Curves []SweepCurve `json:"curves"`
}

// SweepCurve is one design's points in one mode, in rate order, and its knee.
type SweepCurve struct {
	Faults bool         `json:"faults"` // the scenario's faults were injected
	Points []SweepPoint `json:"points"`
	Knee   SweepKnee    `json:"knee"`
}

// SweepPoint is one run at one offered rate: what the system did (latency, errors) and
// what the harness did (rate achieved, scheduling lag, CPU), from which the point is
// judged valid or not.
type SweepPoint struct {
	Rate      float64 `json:"rate"`     // offered, requests/s
	Achieved  float64 `json:"achieved"` // sent, requests/s, over the whole load
	SentShare float64 `json:"sent_share"`
	Requests  int     `json:"requests"` // in the window
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	ErrorRate float64 `json:"error_rate"` // failed share of the window's requests
	LagP99MS  float64 `json:"lag_p99_ms"` // scheduling lag: actual minus planned start
	// CPU is the machine's busy share over the load (all cores, 0..1); HarnessCPU is the
	// share this process (load generator, proxies, scraper) took of the same machine.
	CPU        float64 `json:"cpu"`
	HarnessCPU float64 `json:"harness_cpu"`
	Busy       bool    `json:"busy,omitempty"` // CPU at or above the busy share
	Verdict    Verdict `json:"verdict"`        // the run's own verdict
	// Invalid marks a point that cannot speak for the design: the harness fell behind, or
	// the run did not complete. Reason says which.
	Invalid bool   `json:"invalid"`
	Reason  string `json:"reason,omitempty"`
	RunDir  string `json:"run_dir,omitempty"`
}

// SweepKnee is where a curve leaves its bounds: the first valid rate whose p99 or error
// rate exceeds its bound. Found is false when every valid point held (the knee lies
// beyond the highest rate tried, or no point was valid).
type SweepKnee struct {
	Found bool    `json:"found"`
	Rate  float64 `json:"rate,omitempty"`
	// Why names the figure that left its bound, with figure and bound.
	Why string `json:"why"`
	// LastGood is the highest valid rate below the knee (or overall) that held both bounds.
	LastGood float64 `json:"last_good,omitempty"`
	// Excluded counts the invalid points knee detection skipped.
	Excluded int `json:"excluded,omitempty"`
}

// Write encodes s as indented JSON.
func (s *Sweep) Write(w io.Writer) error {
	if s.Version == 0 {
		s.Version = SweepVersion
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("encode sweep: %w", err)
	}
	return nil
}

// ReadSweepFile reads a sweep.json, refusing unknown fields and a newer version.
func ReadSweepFile(path string) (*Sweep, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open sweep: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, MaxResultSize))
	dec.DisallowUnknownFields()
	var s Sweep
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode sweep %s: %w", path, err)
	}
	if s.Version < 1 || s.Version > SweepVersion {
		return nil, fmt.Errorf("decode sweep %s: version %d is not supported (this faultline reads version %d)", path, s.Version, SweepVersion)
	}
	return &s, nil
}
