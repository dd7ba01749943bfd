package node

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

func openReplicating(t *testing.T, dir string, bootstrap ...string) *Node {
	t.Helper()
	return openTest(t, dir, func(c *Config) {
		c.Replication = &Replication{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: bootstrap, Swarm: "test-" + t.Name()}
	})
}

// waitConverged polls until every node holds the same offsets, covering
// want events, and returns the merged order each shows.
func waitConverged(t *testing.T, want int, nodes ...*Node) [][]lamport.EventKey {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var offs []event.OffsetMap
		total := 0
		for _, n := range nodes {
			o, _ := n.Offsets(context.Background())
			offs = append(offs, o.Present)
		}
		for _, v := range offs[0] {
			total += int(v) + 1
		}
		same := true
		for _, o := range offs[1:] {
			same = same && maps.Equal(o, offs[0])
		}
		if same && total == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged after 60s: offsets %v", offs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var views [][]lamport.EventKey
	for _, n := range nodes {
		views = append(views, keys(query(t, n, event.QueryRequest{Query: aql.MustParse("FROM allEvents")})))
	}
	return views
}

// TestReplicationRelayAndCatchUp: A-B-C in a line (C never dials A), events
// written on A and C reach every node, every node shows the same merged
// order, and a node that was offline catches up when it returns.
func TestReplicationRelayAndCatchUp(t *testing.T) {
	a := openReplicating(t, t.TempDir())
	bdir := t.TempDir()
	b := openReplicating(t, bdir, a.ListenAddrs()[0])
	c := openReplicating(t, t.TempDir(), b.ListenAddrs()[0])
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
	b = openReplicating(t, bdir, a.ListenAddrs()[0])
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
