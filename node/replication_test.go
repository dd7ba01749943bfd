package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
)

// TestReplicationRelayAndCatchUp: A-B-C in a line (C never dials A), events
// written on A and C reach every node, every node shows the same merged
// order, and a node that was offline catches up when it returns. It runs
// on a simulated network in a synctest bubble (virtual time).
func TestReplicationRelayAndCatchUp(t *testing.T) {
	synctest.Test(t, relayAndCatchUp)
}

func relayAndCatchUp(t *testing.T) {
	sim := newSim(t)
	a := openReplicating(t, sim, t.TempDir())
	bdir := t.TempDir()
	b := openReplicating(t, sim, bdir, a.ListenAddrs()[0])
	c := openReplicating(t, sim, t.TempDir(), b.ListenAddrs()[0])
	for i := range 30 {
		publish(t, a, "a", fmt.Sprint(i))
		publish(t, c, "c", fmt.Sprint(i))
	}
	views := waitConverged(t, 60, a, b, c)
	if !slices.Equal(views[0], views[1]) || !slices.Equal(views[0], views[2]) {
		t.Fatalf("merged orders differ:\nA %v\nB %v\nC %v", views[0], views[1], views[2])
	}
	// Replicated events raise the clock: a new event on C sorts after A's.
	m := publish(t, c, "c")
	if lastA := views[0][len(views[0])-1]; m.Lamport <= lastA.Lamport {
		t.Fatalf("C's new event has lamport %d, not after %d", m.Lamport, lastA.Lamport)
	}
	waitConverged(t, 61, a, b, c)

	// B goes offline; A writes; B comes back and catches up.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		publish(t, a, "a")
	}
	b = openReplicating(t, sim, bdir, a.ListenAddrs()[0])
	views = waitConverged(t, 81, a, b)
	if !slices.Equal(views[0], views[1]) {
		t.Fatal("A and B disagree after catch-up")
	}
	// The replica serves heads it verified: every stream has one.
	heads, _ := b.Heads(context.Background())
	if len(heads) != 2 {
		t.Fatalf("B holds heads of %d streams, want 2", len(heads))
	}
	info, _ := b.Info(context.Background())
	if info.ConnectedNodes < 1 {
		t.Fatalf("B reports %d connected nodes", info.ConnectedNodes)
	}
}
