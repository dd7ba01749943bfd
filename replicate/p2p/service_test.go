package p2p

import (
	"context"
	"iter"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/internal/testnet"
	"github.com/edgelog/edgelog/replicate"
)

type testNode struct {
	o     origin
	store *memStore
	svc   *Service
	parts *testnet.Partitions // shared by the nodes started together
}

func startNodes(t *testing.T, n int) []*testNode {
	return startNodesBlocks(t, make([]bool, n))
}

// startNodesBlocks starts a node per element of blocks, which speaks
// PullBlocksProtocol where the element is true and otherwise only
// PullProtocol, as an older node would.
func startNodesBlocks(t *testing.T, blocks []bool) []*testNode {
	t.Helper()
	nodes := make([]*testNode, len(blocks))
	parts := testnet.NewPartitions()
	for i := range nodes {
		o := newOrigin(t)
		tn := &testNode{o: o, store: newMemStore(), parts: parts}
		svc, err := Start(context.Background(), Config{
			Key: o.Key, Store: tn.store, Swarm: t.Name(), Heartbeat: 300 * time.Millisecond,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Gater: parts.Gater(o.ID),
			Planner: replicate.PlannerConfig{BaseBackoff: 200 * time.Millisecond, MaxBackoff: time.Second},
			Logger:  slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !blocks[i] {
			svc.Host().RemoveStreamHandler(PullBlocksProtocol)
		}
		tn.svc = svc
		t.Cleanup(func() { svc.Close() })
		nodes[i] = tn
	}
	return nodes
}

func connect(t *testing.T, a, b *testNode) {
	t.Helper()
	h := b.svc.Host()
	if err := a.svc.Host().Connect(context.Background(), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing t after d (testnet.WaitFor).
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, d, what, func() (bool, string) { return cond(), "" })
}

func holdsAll(nodes []*testNode, sources ...*testNode) bool {
	for _, n := range nodes {
		for _, src := range sources {
			want := src.store.Events(src.o.Stream)
			if !reflect.DeepEqual(n.store.Events(src.o.Stream), want) {
				return false
			}
		}
	}
	return true
}

// line connects three nodes A-B-C, A and C never: their gaters refuse
// each other.
func line(t *testing.T, nodes []*testNode) (a, b, c *testNode) {
	t.Helper()
	a, b, c = nodes[0], nodes[1], nodes[2]
	a.parts.Cut(a.o.ID, c.o.ID)
	connect(t, a, b)
	connect(t, b, c)
	return a, b, c
}

func TestServiceConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("network test")
	}
	converge(t, startNodes(t, 3))
}

// converge connects three nodes pairwise; all write, then they hold the
// same events, then a live one, and have nothing left to replicate.
func converge(t *testing.T, nodes []*testNode) {
	t.Helper()
	connect(t, nodes[0], nodes[1])
	connect(t, nodes[1], nodes[2])
	connect(t, nodes[0], nodes[2])
	r := rand.New(rand.NewPCG(1, 1))
	for _, n := range nodes {
		for range 5 {
			n.store.Publish(t, r, n.o, 20)
		}
	}
	waitFor(t, 20*time.Second, "convergence", func() bool { return holdsAll(nodes, nodes...) })
	nodes[0].store.Publish(t, r, nodes[0].o, 3)
	waitFor(t, 10*time.Second, "live event", func() bool { return holdsAll(nodes, nodes...) })
	waitFor(t, 5*time.Second, "toReplicate empty", func() bool { return len(nodes[2].svc.ToReplicate()) == 0 })
}

// lyingStore serves other nodes' events with altered payloads.
type lyingStore struct {
	*memStore
	self string
}

func (l *lyingStore) ReadRange(ctx context.Context, s event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	return func(yield func(chain.Entry, error) bool) {
		for en, err := range l.memStore.ReadRange(ctx, s, from, to) {
			if s.Node() != l.self {
				en.Event.Payload = append([]byte{0x01}, en.Event.Payload...)
			}
			if !yield(en, err) {
				return
			}
		}
	}
}

func TestServiceLyingRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("network test")
	}
	nodes := startNodes(t, 4)
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	// B lies; rebuild it with a lying store.
	b.svc.Close()
	liar := &lyingStore{memStore: b.store, self: b.o.ID.String()}
	svc, err := Start(context.Background(), Config{Key: b.o.Key, Store: liar, Swarm: t.Name(), Heartbeat: 300 * time.Millisecond,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	// It lies in ReadRange: answer pulls with PullProtocol only.
	svc.Host().RemoveStreamHandler(PullBlocksProtocol)
	b.svc = svc
	a.parts.Cut(a.o.ID, c.o.ID)
	connect(t, a, b)
	connect(t, b, c)
	r := rand.New(rand.NewPCG(3, 3))
	a.store.Publish(t, r, a.o, 30)
	waitFor(t, 10*time.Second, "B holds A's events", func() bool { return holdsAll([]*testNode{b}, a) })
	// C hears of A's stream only through the liar: nothing lands.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if got := c.store.Events(a.o.Stream); len(got) > 0 {
			t.Fatalf("C stored %d events relayed by a liar", len(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The liar's pulls failed verification: its gossip score at C drops.
	waitFor(t, 10*time.Second, "the liar's gossip score below zero at C", func() bool {
		ps, err := c.svc.Peers(context.Background())
		if err != nil {
			return false
		}
		for _, p := range ps {
			if p.ID == b.o.ID && p.Score < 0 {
				return true
			}
		}
		return false
	})
	// An honest relay appears: C catches up through it.
	connect(t, a, d)
	connect(t, d, c)
	waitFor(t, 20*time.Second, "A's events at C through D", func() bool { return holdsAll([]*testNode{c}, a) })
}

// TestServiceMixedPullProtocols: nodes with and without the blocks protocol
// pull from each other. A and B speak it, C does not; A-B-C is a chain.
func TestServiceMixedPullProtocols(t *testing.T) {
	if testing.Short() {
		t.Skip("network test")
	}
	nodes := startNodesBlocks(t, []bool{true, true, false})
	a, b, c := line(t, nodes)
	r := rand.New(rand.NewPCG(3, 3))
	a.store.Publish(t, r, a.o, 40)
	c.store.Publish(t, r, c.o, 40)
	waitFor(t, 20*time.Second, "convergence", func() bool { return holdsAll(nodes, a, c) })
	if b.store.Decoded() == 0 {
		t.Fatal("B pulled from A without blocks")
	}
}
