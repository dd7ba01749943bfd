//go:build testclock

package main

import (
	"os"
	"time"
)

// testClockEnv holds the shift of the wall clock (a Go duration, e.g.
// 72h or -72h) of a binary built with -tags testclock.
const testClockEnv = "EDGELOG_TESTCLOCK_SHIFT"

// wallClock is time.Now shifted by $EDGELOG_TESTCLOCK_SHIFT, for tests
// only (see clock.go); an unparsable shift panics at start.
func wallClock() func() time.Time {
	s := os.Getenv(testClockEnv)
	if s == "" {
		return time.Now
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		panic("edgelog: " + testClockEnv + ": " + err.Error())
	}
	return func() time.Time { return time.Now().Add(d) }
}
