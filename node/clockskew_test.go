package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// TestClockSkew: three nodes whose wall clocks are 72 h ahead (A), 72 h
// behind (B) and right (C), every stream kept for maxAge 24 h. What
// docs/reliability.md says a skewed clock does:
//   - the merged order is the same on every node and follows Lamport
//     times, not timestamps (which are the origin's clock);
//   - maxAge compares the origin's timestamp with the holder's clock: an
//     origin keeps its own events by its own clock; a node ahead expires
//     the others' events as they arrive; every node keeps the events of a
//     node whose clock is ahead (they look new), and expires those of a
//     node that is behind by more than maxAge;
//   - replication goes on: later events still reach every node (and are
//     expired there again where the rule says so).
//
// It runs on a simulated network in a synctest bubble (virtual time).
func TestClockSkew(t *testing.T) {
	synctest.Test(t, clockSkew)
}

func clockSkew(t *testing.T) {
	skews := []time.Duration{72 * time.Hour, -72 * time.Hour, 0}
	started := 0
	c := newSimCluster(t, 3, func(cfg *Config) {
		skew := skews[started]
		started++
		cfg.Store.Now = func() time.Time { return time.Now().Add(skew) }
		cfg.Store.PruneInterval = time.Second
		withStreams(nil, map[string]expiry.Retention{"default": {MaxAge: 24 * time.Hour}})(cfg)
	})
	for range 5 {
		for i := range 3 {
			c.publishBatches(i, 1, 4, "skew")
		}
	}
	awaitOffsets(t, time.Minute, 60, c.nodes...)
	streams := make([]event.StreamID, 3)
	for i, n := range c.nodes {
		streams[i] = n.DefaultStream()
	}

	// held[i][j]: the events of node j's stream node i keeps for good.
	held := [3][3]uint64{
		{20, 0, 0},   // A (ahead) expires B's and C's
		{20, 20, 20}, // B (behind) keeps all: everything looks new
		{20, 0, 20},  // C expires B's, 72 h old by its clock
	}
	waitHeld := func(extraB uint64) {
		t.Helper()
		waitFor(t, "retention by each node's clock", func() (bool, string) {
			var got [3][3]uint64
			for i, n := range c.nodes {
				o, err := n.Offsets(context.Background())
				if err != nil {
					return false, err.Error()
				}
				for j, s := range streams {
					got[i][j] = o.Streams[s].Count
					if o.Present[s] != 19+extraOffset(j, extraB) {
						return false, fmt.Sprintf("node %d holds %s up to %d", i, s, o.Present[s])
					}
				}
			}
			want := held
			want[1][1] += extraB
			return got == want, fmt.Sprintf("counts %v, want %v", got, want)
		})
	}
	waitHeld(0)

	for i, n := range c.nodes {
		evs := queryAll(t, n)
		for k := 1; k < len(evs); k++ {
			if !evs[k-1].Key().Less(evs[k].Key()) {
				t.Fatalf("node %d: merged order broken at %d", i, k)
			}
		}
		for _, e := range evs {
			origin := slices.Index(streams, e.Stream)
			if d := time.Duration(e.Timestamp-time.Now().UnixMicro()) * time.Microsecond; d < skews[origin]-time.Minute || d > skews[origin]+time.Minute {
				t.Fatalf("node %d: an event of node %d is stamped %v from now; its origin's clock is %v off", i, origin, d, skews[origin])
			}
		}
	}
	// B holds all 60: its view shows timestamps jumping back and forth in
	// merged order, which is the Lamport order, identical on every node.
	evs := queryAll(t, c.nodes[1])
	if len(evs) != 60 {
		t.Fatalf("B shows %d events, want 60", len(evs))
	}
	backwards := 0
	for k := 1; k < len(evs); k++ {
		if evs[k].Timestamp < evs[k-1].Timestamp {
			backwards++
		}
	}
	if backwards == 0 {
		t.Fatal("merged order followed the timestamps: the test shows nothing")
	}
	for _, i := range []int{0, 2} {
		var common []*event.Event
		for _, e := range evs {
			if held[i][slices.Index(streams, e.Stream)] > 0 {
				common = append(common, e)
			}
		}
		got := queryAll(t, c.nodes[i])
		if len(got) != len(common) {
			t.Fatalf("node %d shows %d events, want %d", i, len(got), len(common))
		}
		for k := range got {
			if got[k].Key() != common[k].Key() {
				t.Fatalf("node %d position %d: %v, B shows %v", i, k, got[k].Key(), common[k].Key())
			}
		}
	}

	// Replication goes on: B's next events reach A and C, which expire
	// them again.
	c.publishBatches(1, 1, 4, "skew")
	waitHeld(4)
}

// extraOffset is how far stream j grew past offset 19: extra for B's.
func extraOffset(j int, extra uint64) uint64 {
	if j == 1 {
		return extra
	}
	return 0
}
