//go:build race

package console_test

// raceEnabled: the race detector slows the reference services several times over, past
// the latency bounds a catalog scenario holds them to.
const raceEnabled = true
