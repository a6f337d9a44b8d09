// Package loadgen is Faultline's load generator: an open-model load (requests are sent on
// schedule whether or not earlier ones have answered) built on vegeta's Attacker, with a
// weighted mix of journeys drawn from one seeded RNG, so that two runs with the same seed
// and spec send the same requests at the same planned times. Every request is streamed to
// a sink as it completes; nothing keeps the whole run in memory.
package loadgen

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero values of a Spec.
const (
	DefaultMaxWorkers = 64
	DefaultTimeout    = 5 * time.Second
	DefaultClients    = 1
	DefaultMaxBody    = 64 << 10
)

// Spec is everything that decides a load: with the same Spec (Seed included) two runs plan
// the same requests at the same offsets.
type Spec struct {
	// Rate is the constant rate, or the rate a Ramp starts from.
	Rate Rate
	// Ramp, when set, moves the rate through its steps one after the other: each holds its
	// rate for its duration, unless its Shape is ShapeLinear.
	Ramp []Step
	// Duration is the length of the load. With a Ramp it may be zero (the ramp's length)
	// or longer (the last rate is held until Duration).
	Duration time.Duration
	// MaxWorkers bounds requests in flight, so that a slow system delays the load (which
	// the Summary reports) instead of growing the harness's memory without limit.
	MaxWorkers int
	// Timeout bounds one request, body included.
	Timeout time.Duration
	// Mix weighs the journeys by name; a journey absent from it is never sent. A ramp
	// step's own Mix replaces it from that step on.
	Mix map[string]int
	// Seed drives every random choice and every idempotency key.
	Seed int64
	// Clients is the number of virtual clients (each with its own bearer token).
	Clients int
	// Journeys are the journeys Mix can name.
	Journeys []Journey
	// MaxBody bounds how much of each response is read (the rest is discarded).
	MaxBody int64
}

func (s Spec) withDefaults() Spec {
	if s.MaxWorkers == 0 {
		s.MaxWorkers = DefaultMaxWorkers
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Clients == 0 {
		s.Clients = DefaultClients
	}
	if s.MaxBody == 0 {
		s.MaxBody = DefaultMaxBody
	}
	return s
}

// Validate reports every problem with s at once. Zero MaxWorkers, Timeout, Clients and
// MaxBody are valid and mean the defaults.
func (s Spec) Validate() []error {
	var errs []error
	if err := s.Rate.validate("rate"); err != nil {
		errs = append(errs, err)
	}
	var rampLen time.Duration
	for i, st := range s.Ramp {
		if err := st.Rate.validate(fmt.Sprintf("ramp step %d rate", i+1)); err != nil {
			errs = append(errs, err)
		}
		if st.Duration <= 0 {
			errs = append(errs, fmt.Errorf("ramp step %d: duration %s is not positive", i+1, st.Duration))
		}
		if st.Shape != "" && st.Shape != ShapeStep && st.Shape != ShapeLinear {
			errs = append(errs, fmt.Errorf("ramp step %d: shape %q is neither %q nor %q", i+1, st.Shape, ShapeStep, ShapeLinear))
		}
		rampLen += st.Duration
	}
	switch {
	case s.Duration < 0:
		errs = append(errs, fmt.Errorf("duration %s is negative", s.Duration))
	case len(s.Ramp) == 0 && s.Duration == 0:
		errs = append(errs, errors.New("duration is zero and there is no ramp"))
	case len(s.Ramp) > 0 && s.Duration != 0 && s.Duration < rampLen:
		errs = append(errs, fmt.Errorf("duration %s is shorter than the ramp (%s)", s.Duration, rampLen))
	}
	if len(s.Ramp) == 0 && s.Rate.Freq == 0 {
		errs = append(errs, errors.New("rate is zero and there is no ramp"))
	}
	if len(errs) == 0 && newPacer(s.Rate, s.Ramp, s.Duration).Planned() == 0 {
		errs = append(errs, errors.New("the rate and duration plan no request"))
	}
	if s.MaxWorkers < 0 {
		errs = append(errs, fmt.Errorf("max workers %d is negative", s.MaxWorkers))
	}
	if s.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", s.Timeout))
	}
	if s.Clients < 0 {
		errs = append(errs, fmt.Errorf("clients %d is negative", s.Clients))
	}
	if s.MaxBody < 0 {
		errs = append(errs, fmt.Errorf("max body %d is negative", s.MaxBody))
	}
	names := map[string]bool{}
	for i, j := range s.Journeys {
		switch {
		case j == nil:
			errs = append(errs, fmt.Errorf("journey %d is nil", i+1))
		case j.Name() == "":
			errs = append(errs, fmt.Errorf("journey %d has no name", i+1))
		case names[j.Name()]:
			errs = append(errs, fmt.Errorf("journey %q is declared twice", j.Name()))
		default:
			names[j.Name()] = true
		}
	}
	errs = append(errs, mixErrs("mix", s.Mix, names)...)
	for i, st := range s.Ramp {
		if st.Mix != nil {
			errs = append(errs, mixErrs(fmt.Sprintf("ramp step %d mix", i+1), st.Mix, names)...)
		}
	}
	return errs
}

// mixErrs reports the problems of one mix: a journey not declared, a negative weight, no
// positive weight at all.
func mixErrs(what string, mix map[string]int, declared map[string]bool) []error {
	var errs []error
	total := 0
	for _, name := range slices.Sorted(maps.Keys(mix)) {
		w := mix[name]
		if !declared[name] {
			errs = append(errs, fmt.Errorf("%s names journey %q, which is not declared", what, name))
		}
		if w < 0 {
			errs = append(errs, fmt.Errorf("%s weight of %q is negative", what, name))
			continue
		}
		total += w
	}
	if total <= 0 {
		errs = append(errs, fmt.Errorf("%s has no positive weight", what))
	}
	return errs
}

// Pacer returns the rate curve of s: how many requests it plans and when each is due.
func (s Spec) Pacer() *Pacer { return newPacer(s.Rate, s.Ramp, s.Duration) }

// Plan describes the shape of the load in one line for people, before it runs: "50/s for
// 20s; 1,000 requests planned", or for a ramp of equal steps "20→200/s in 5 steps of 4s:
// 20, 65, 110, 155, 200/s; 2,200 requests planned". Call it on a spec whose Validate passed.
func (s Spec) Plan() string {
	p := s.Pacer()
	var b strings.Builder
	var rampLen time.Duration
	for _, st := range s.Ramp {
		rampLen += st.Duration
	}
	switch {
	case len(s.Ramp) == 0:
		fmt.Fprintf(&b, "%s for %s", s.Rate, s.Duration)
	case equalSteps(s.Ramp):
		first, last := s.Ramp[0].Rate, s.Ramp[len(s.Ramp)-1].Rate
		rates := make([]Rate, len(s.Ramp))
		for i, st := range s.Ramp {
			rates[i] = st.Rate
		}
		fmt.Fprintf(&b, "%s→%s in %d steps of %s: %s", rateNumber(first, last), last, len(s.Ramp), s.Ramp[0].Duration, rateList(rates))
	default:
		prev := s.Rate
		for i, st := range s.Ramp {
			if i > 0 {
				b.WriteString(", ")
			}
			switch {
			case !st.Shape.Linear():
				fmt.Fprintf(&b, "%s for %s", st.Rate, st.Duration)
			case i == 0:
				fmt.Fprintf(&b, "linear from %s to %s over %s", cmpRate(prev), st.Rate, st.Duration)
			default:
				fmt.Fprintf(&b, "linear to %s over %s", st.Rate, st.Duration)
			}
			prev = st.Rate
		}
	}
	if len(s.Ramp) > 0 && s.Duration > rampLen {
		fmt.Fprintf(&b, ", then %s until %s", s.Ramp[len(s.Ramp)-1].Rate, s.Duration)
	}
	fmt.Fprintf(&b, "; %s requests planned", thousands(p.Planned()))
	return b.String()
}

// equalSteps reports whether a ramp is two or more plateaus of one duration, which Plan
// writes as a staircase.
func equalSteps(ramp []Step) bool {
	if len(ramp) < 2 {
		return false
	}
	for _, st := range ramp {
		if st.Shape.Linear() || st.Duration != ramp[0].Duration {
			return false
		}
	}
	return true
}

// rateNumber writes r without its unit when it shares the unit of other ("20" before
// "200/s"), and in full otherwise.
func rateNumber(r, other Rate) string {
	if r.Per == other.Per {
		return strconv.Itoa(r.Freq)
	}
	return r.String()
}

// rateList writes rates of one unit as "20, 65, 110/s", and mixed ones in full.
func rateList(rates []Rate) string {
	parts := make([]string, len(rates))
	last := rates[len(rates)-1]
	for i, r := range rates {
		parts[i] = rateNumber(r, last)
	}
	if strings.HasSuffix(parts[len(parts)-1], last.String()) {
		return strings.Join(parts, ", ")
	}
	return strings.Join(parts, ", ") + strings.TrimPrefix(last.String(), strconv.Itoa(last.Freq))
}

// cmpRate writes a rate, "0/s" for the zero rate a ramp starts from.
func cmpRate(r Rate) string {
	if r.IsZero() {
		return "0/s"
	}
	return r.String()
}

// thousands writes n with a comma every three digits: 2,200.
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
