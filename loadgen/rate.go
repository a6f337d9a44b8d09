package loadgen

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// maxPerSecond bounds any rate RateOf accepts: far beyond what one harness can send, and
// small enough that interval arithmetic never overflows.
const maxPerSecond = 1e7

// Rate is a request rate: Freq requests every Per. It is kept as a fraction rather than a
// float so that "3000/m" plans exactly 3000 requests a minute, as vegeta's ConstantPacer does.
type Rate struct {
	Freq int           `json:"freq"`
	Per  time.Duration `json:"per"`
}

// RateOf parses a rate written as "50/s", "3000/m", "10/h", "5/100ms", "7/2s" or a bare
// "50" (per second). Frequencies are whole numbers; write "1/2s" for half a request a second.
func RateOf(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Rate{}, errors.New("parse rate: empty")
	}
	freqText, perText, found := strings.Cut(s, "/")
	if !found {
		perText = "s"
	}
	freq, err := strconv.Atoi(strings.TrimSpace(freqText))
	if err != nil {
		return Rate{}, fmt.Errorf("parse rate %q: frequency: %w", s, err)
	}
	if freq < 0 {
		return Rate{}, fmt.Errorf("parse rate %q: frequency is negative", s)
	}
	per, err := parsePer(strings.TrimSpace(perText))
	if err != nil {
		return Rate{}, fmt.Errorf("parse rate %q: %w", s, err)
	}
	r := Rate{Freq: freq, Per: per}
	if r.PerSecond() > maxPerSecond {
		return Rate{}, fmt.Errorf("parse rate %q: more than %g requests per second", s, float64(maxPerSecond))
	}
	return r, nil
}

func parsePer(s string) (time.Duration, error) {
	switch s {
	case "ns", "us", "µs", "ms", "s", "m", "h":
		s = "1" + s
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("parse period: %w", err)
	}
	if d <= 0 {
		return 0, errors.New("period is not positive")
	}
	return d, nil
}

// PerSecond returns the rate in requests per second; 0 for a zero or malformed rate.
func (r Rate) PerSecond() float64 {
	if r.Per <= 0 || r.Freq <= 0 {
		return 0
	}
	return float64(r.Freq) / r.Per.Seconds()
}

// Vegeta returns the rate as vegeta's ConstantPacer.
func (r Rate) Vegeta() vegeta.Rate { return vegeta.Rate{Freq: r.Freq, Per: r.Per} }

// IsZero reports whether r is the zero rate.
func (r Rate) IsZero() bool { return r.Freq == 0 }

// String writes r the way RateOf reads it back.
func (r Rate) String() string {
	switch r.Per {
	case time.Second:
		return strconv.Itoa(r.Freq) + "/s"
	case time.Minute:
		return strconv.Itoa(r.Freq) + "/m"
	case time.Hour:
		return strconv.Itoa(r.Freq) + "/h"
	}
	return strconv.Itoa(r.Freq) + "/" + r.Per.String()
}

// MarshalText writes r as "50/s" so scenario files and reports show rates the way people
// type them.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads any form RateOf accepts.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := RateOf(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// validate reports what makes r unusable as a pacing rate.
func (r Rate) validate(what string) error {
	switch {
	case r.Freq < 0:
		return fmt.Errorf("%s: frequency %d is negative", what, r.Freq)
	case r.Freq > 0 && r.Per <= 0:
		return fmt.Errorf("%s: period %s is not positive", what, r.Per)
	case r.PerSecond() > maxPerSecond || math.IsInf(r.PerSecond(), 0):
		return fmt.Errorf("%s: more than %g requests per second", what, float64(maxPerSecond))
	}
	return nil
}

// Shape says how a ramp step reaches its rate.
type Shape string

// Shapes of a ramp step.
const (
	// ShapeStep (also the zero value) holds the step's rate for its whole duration: the
	// rate jumps at the step's start, so five steps of 4 s from 20/s to 200/s send
	// 4 × (20+65+110+155+200) requests and the last step runs at 200/s throughout.
	ShapeStep Shape = "step"
	// ShapeLinear moves the rate in a straight line from the previous step's rate (the
	// spec's Rate for the first step, zero when it has none) to the step's rate.
	ShapeLinear Shape = "linear"
)

// Linear reports whether s is a slope rather than a plateau.
func (s Shape) Linear() bool { return s == ShapeLinear }

// Step is one stage of a ramp: Rate held for Duration, or, with Shape ShapeLinear, reached
// in a straight line over Duration. Mix, when set, weighs the journeys from the step's
// start on, until a later step sets its own: a load whose mix changes as it runs.
type Step struct {
	Rate     Rate           `json:"rate"`
	Duration time.Duration  `json:"duration"`
	Shape    Shape          `json:"shape,omitempty"`
	Mix      map[string]int `json:"mix,omitempty"`
}
