//go:build race

package node

// raceEnabled reports whether the tests run with the race detector.
const raceEnabled = true
