// Package testnet holds what the tests of several packages need to run
// nodes that talk to each other: waiting for a condition that gossip and
// pulls bring about, and cutting links between libp2p peers (Partitions).
package testnet

import (
	"testing"
	"time"
)

// Poll is how often WaitFor checks its condition.
const Poll = 20 * time.Millisecond

// WaitFor checks cond every Poll until it holds, and fails t if it still
// does not after d. cond returns whether it holds and, for the failure
// message, the state it saw.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after %v: %s", what, d, state)
		}
		time.Sleep(Poll)
	}
}
