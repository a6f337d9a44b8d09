package faults

import (
	"fmt"
	"strings"
	"time"
)

// validName accepts component, service and link-end names: letters, digits, '.', '_'
// and '-', which is what the system spec and the registry keys allow.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

// parseLinkTarget splits "caller->callee" (callee a service or one instance).
func parseLinkTarget(target string) (from, to string, err error) {
	from, to, ok := strings.Cut(target, "->")
	if !ok || strings.Contains(to, "->") || !validName(from) || !validName(to) {
		return "", "", fmt.Errorf("target: want caller->callee (for example api->db or api->db-2), got %q", target)
	}
	return from, to, nil
}

func checkLinkTarget(target string) []error {
	if _, _, err := parseLinkTarget(target); err != nil {
		return []error{err}
	}
	return nil
}

func linkTargets(target string) []string {
	from, to, err := parseLinkTarget(target)
	if err != nil {
		return nil
	}
	return []string{from, to}
}

func checkDuration(field string, d time.Duration) []error {
	if d < 0 {
		return []error{fmt.Errorf("%s: must not be negative, got %s", field, d)}
	}
	return nil
}

// streamsFor maps a fault's direction to Toxiproxy streams. Toxiproxy's "downstream" is
// callee to caller, "upstream" caller to callee.
func streamsFor(direction string) []string {
	switch direction {
	case "upstream":
		return []string{"upstream"}
	case "both":
		return []string{"upstream", "downstream"}
	default:
		return []string{"downstream"}
	}
}

func checkDirection(direction string) []error {
	switch direction {
	case "", "downstream", "upstream", "both":
		return nil
	}
	return []error{fmt.Errorf("direction: want downstream, upstream or both, got %q", direction)}
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
