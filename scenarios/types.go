package scenarios

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string ("500ms", "20s"); a bare
// number is refused because "20" is ambiguous between seconds and nanoseconds.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

const durationHint = "use a Go duration such as 500ms, 20s or 1m30s"

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return hint(durationHint, "want a duration, got %s", describe(n))
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return hint(durationHint, "cannot parse %q as a duration", n.Value)
	}
	if v < 0 {
		return &negativeDuration{hinted{msg: fmt.Sprintf("duration %q is negative", n.Value), hint: "a duration is a length of time, 0 or more, such as 200ms"}}
	}
	if v > MaxDuration {
		return hint(fmt.Sprintf("no duration in a scenario exceeds %s; a load lasts at most %s", MaxDuration, MaxLoadDuration), "duration %q is longer than %s", n.Value, MaxDuration)
	}
	*d = Duration(v)
	return nil
}

// MaxDuration bounds every duration a scenario file holds. Without a bound, at: 2562047h
// parses (it fits an int64 of nanoseconds) and at + for wraps around to a negative time
// that every "ends after the load" comparison misses; 24h is far above any sensible value
// (a load lasts at most MaxLoadDuration) and far below the wrap-around.
const MaxDuration = 24 * time.Hour

// negativeDuration is a negative duration. The decoder replaces its hint with one that
// fits the field: a start time (at) counts from load start, a latency is a length.
type negativeDuration struct{ hinted }

// addSat adds durations without wrapping around: a sum beyond the int64 range saturates.
func addSat(a, b Duration) Duration {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return Duration(math.MaxInt64)
	case a < 0 && b < 0 && s >= 0:
		return Duration(math.MinInt64)
	}
	return s
}

// MarshalYAML writes d as a duration string so a decoded scenario round-trips.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Rate is a request rate such as "50/s" or "600/1m": Freq requests every Per. It mirrors
// vegeta's Rate so that loadgen can hand it over without rounding.
type Rate struct {
	Freq int
	Per  time.Duration
}

// PerSecond returns the rate in requests per second.
func (r Rate) PerSecond() float64 {
	if r.Per <= 0 {
		return 0
	}
	return float64(r.Freq) / r.Per.Seconds()
}

// String formats r as "50/1s".
func (r Rate) String() string { return fmt.Sprintf("%d/%s", r.Freq, r.Per) }

// IsZero reports whether no rate was given.
func (r Rate) IsZero() bool { return r.Freq == 0 && r.Per == 0 }

const rateHint = `write requests per unit, such as "50/s", "600/1m" or "5/100ms"`

// ParseRate reads "N/unit" where unit is s, m, h or a Go duration ("100ms").
func ParseRate(s string) (Rate, error) {
	num, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, hint(rateHint, "cannot parse %q as a rate", s)
	}
	freq, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || freq < 0 {
		return Rate{}, hint(rateHint, "cannot parse %q as a rate: %q is not a whole number of requests", s, num)
	}
	per = strings.TrimSpace(per)
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, hint(rateHint, "cannot parse %q as a rate: bad unit %q", s, per)
	}
	return Rate{Freq: freq, Per: d}, nil
}

// UnmarshalYAML reads a rate string.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return hint(rateHint, "want a rate, got %s", describe(n))
	}
	v, err := ParseRate(n.Value)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalYAML writes r as "50/1s".
func (r Rate) MarshalYAML() (any, error) { return r.String(), nil }

// Fraction is a share between 0 and 1, written either as a number (0.05) or a percentage
// ("5%"), because thresholds read more naturally as percentages in a workshop.
type Fraction float64

const fractionHint = `write a number between 0 and 1 (0.05) or a percentage ("5%")`

// UnmarshalYAML reads a number or percentage.
func (f *Fraction) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return hint(fractionHint, "want a fraction, got %s", describe(n))
	}
	s := strings.TrimSpace(n.Value)
	scale := 1.0
	if p, ok := strings.CutSuffix(s, "%"); ok {
		s, scale = strings.TrimSpace(p), 100
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return hint(fractionHint, "cannot parse %q as a fraction", n.Value)
	}
	v /= scale
	if v < 0 || v > 1 || v != v {
		return hint(fractionHint, "fraction %q is outside 0..1", n.Value)
	}
	*f = Fraction(v)
	return nil
}

// DesignRef names the design a scenario runs: a path to a design YAML file, or a design
// written inline. The inline form is kept as a YAML node because the design package owns
// its format and validates it when the system starts.
type DesignRef struct {
	Path   string
	Inline *yaml.Node
}

// IsZero reports whether no design was given (the default design).
func (d DesignRef) IsZero() bool { return d.Path == "" && d.Inline == nil }

// UnmarshalYAML accepts a path string or a mapping.
func (d *DesignRef) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		*d = DesignRef{Path: n.Value}
	case n.Kind == yaml.MappingNode:
		cp := *n
		*d = DesignRef{Inline: &cp}
	default:
		return hint(`give a path such as designs/resilient.yaml, or the design itself as a mapping`, "want a design path or mapping, got %s", describe(n))
	}
	return nil
}

// describe names what a node is, for type errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing (null)"
	case "!!str":
		return fmt.Sprintf("the string %q", truncate(n.Value, 40))
	}
	return fmt.Sprintf("%s %s", strings.TrimPrefix(n.ShortTag(), "!!"), truncate(n.Value, 40))
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
