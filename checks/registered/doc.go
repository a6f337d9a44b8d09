// Package registered holds the end-to-end test of a check kind registered from outside
// the checks package, through scenarios.RegisterCheck alone: decoded, validated with the
// line of a bad field, evaluated under expect and usable as a stop condition.
package registered
