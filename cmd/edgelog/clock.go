//go:build !testclock

package main

import "time"

// wallClock is the node's wall clock: time.Now. Test binaries built with
// -tags testclock shift it (clock_testclock.go) so that the clock-skew
// tests can run real processes with a skewed clock; release builds have
// no such hook.
func wallClock() func() time.Time { return time.Now }
