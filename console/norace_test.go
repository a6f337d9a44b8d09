//go:build !race

package console_test

// raceEnabled: see race_test.go.
const raceEnabled = false
