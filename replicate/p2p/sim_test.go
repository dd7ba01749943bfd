package p2p

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/x/simlibp2p"

	"github.com/edgelog/edgelog/internal/testnet"
	"github.com/edgelog/edgelog/replicate"
)

// Tests on a simulated network, each inside a testing/synctest bubble:
// time is virtual and advances only when every goroutine of the test
// waits, so waits as long as replication needs cost no real time and a
// run does not depend on the machine's load. The loopback tests in
// service_test.go remain as end-to-end checks over real TCP.

// simNodes starts n services on a simulated network (testnet.Sim: 10 ms
// each way, 20 Mbit/s); call it inside a synctest bubble.
func simNodes(t *testing.T, n int) []*testNode {
	t.Helper()
	sim := testnet.NewSim(t, 10*time.Millisecond, 20*simlibp2p.OneMbps)
	parts := testnet.NewPartitions()
	nodes := make([]*testNode, n)
	for i := range nodes {
		o := newOrigin(t)
		tn := &testNode{o: o, store: newMemStore(), parts: parts}
		listen, opts := sim.Host()
		svc, err := Start(context.Background(), Config{
			Key: o.Key, Store: tn.store, Swarm: t.Name(), Heartbeat: 300 * time.Millisecond,
			ListenAddrs: []string{listen}, Gater: parts.Gater(o.ID), HostOptions: opts,
			Planner: replicate.PlannerConfig{BaseBackoff: 200 * time.Millisecond, MaxBackoff: time.Second},
			Logger:  slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		tn.svc = svc
		t.Cleanup(func() { svc.Close() })
		nodes[i] = tn
	}
	return nodes
}

// TestSimRelays: A's events reach C through B, the gaters keeping A and C
// apart.
func TestSimRelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nodes := simNodes(t, 3)
		a, b, c := nodes[0], nodes[1], nodes[2]
		a.parts.Cut(a.o.ID, c.o.ID)
		connect(t, a, b)
		connect(t, b, c)
		r := rand.New(rand.NewPCG(2, 2))
		a.store.Publish(t, r, a.o, 50)
		waitFor(t, 20*time.Second, "A's events at C through B", func() bool { return holdsAll([]*testNode{c}, a) })
		if c.svc.Host().Network().Connectedness(a.svc.Host().ID()) == network.Connected {
			t.Fatal("A and C connected despite the gater")
		}
	})
}

// TestSimConverges is TestServiceConverges on the simulated network.
func TestSimConverges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { converge(t, simNodes(t, 3)) })
}

// TestSimPartitionHeals cuts A from B and C while A and C write, then
// heals: nothing crosses the cut meanwhile, and every node ends with every
// event.
func TestSimPartitionHeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nodes := simNodes(t, 3)
		a, b, c := nodes[0], nodes[1], nodes[2]
		connect(t, a, b)
		connect(t, b, c)
		connect(t, a, c)
		r := rand.New(rand.NewPCG(4, 4))
		a.store.Publish(t, r, a.o, 10)
		waitFor(t, 10*time.Second, "first events everywhere", func() bool { return holdsAll(nodes, a) })

		a.parts.Split([]peer.ID{a.o.ID}, []peer.ID{b.o.ID, c.o.ID})
		if err := a.parts.Enforce(a.svc.Host(), b.svc.Host(), c.svc.Host()); err != nil {
			t.Fatal(err)
		}
		a.store.Publish(t, r, a.o, 30)
		c.store.Publish(t, r, c.o, 30)
		waitFor(t, 10*time.Second, "C's events at B", func() bool { return holdsAll([]*testNode{b}, c) })
		time.Sleep(5 * time.Second) // virtual: ample time for anything to cross the cut
		if holdsAll([]*testNode{a}, c) || holdsAll([]*testNode{c}, a) {
			t.Fatal("events crossed the partition")
		}

		a.parts.Heal()
		connect(t, a, b)
		waitFor(t, 20*time.Second, "convergence after the heal", func() bool { return holdsAll(nodes, nodes...) })
	})
}
