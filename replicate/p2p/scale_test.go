package p2p

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/x/simlibp2p"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/internal/testnet"
)

var simScale = flag.String("sim.nodes", "", "TestSwarmScaleSim: swarm sizes to measure, comma-separated (empty: skip)")

// TestSwarmScaleSim measures the replication protocol at hundreds to
// thousands of nodes (make bench-scale): the real Service (gossip, sync,
// planner, pulls, verification) over in-memory stores, on the simulated
// network (10 ms each way, 20 Mbit/s per host) in virtual time. Each node
// dials three random others and its successor on a ring (about eight
// connections each), with the production defaults otherwise. For each
// size N it reports:
//   - idle: bytes each node receives per second over 30 s, once all hold
//     the same (after each published one event);
//   - burst: 20 origins publish 100 events each at once: how long until
//     every node holds all, and what each node received for it (until 5 s
//     later, less the idle rate) per byte of the events;
//   - partition: the swarm splits in halves for 30 s while 10 origins on
//     each side publish 50 events each; after the heal, how long until
//     every node holds all, and what each node received for it per byte
//     it missed.
//
// Virtual time holds latency and timers, not the CPU the nodes spend.
func TestSwarmScaleSim(t *testing.T) {
	if *simScale == "" {
		t.Skip("a measurement: make bench-scale (-args -sim.nodes=100,300)")
	}
	for _, f := range strings.Split(*simScale, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 4 {
			t.Fatalf("-sim.nodes: %q is not a swarm size", f)
		}
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) { synctest.Test(t, func(t *testing.T) { scaleSim(t, n) }) })
	}
}

type simSwarm struct {
	t       *testing.T
	sim     *testnet.Sim
	nodes   []*testNode
	listens []string
	edges   [][2]int
	r       *rand.Rand
}

func startSimSwarm(t *testing.T, n int) *simSwarm {
	sw := &simSwarm{t: t, sim: testnet.NewSim(t, 10*time.Millisecond, 20*simlibp2p.OneMbps), r: rand.New(rand.NewPCG(uint64(n), 7))}
	parts := testnet.NewPartitions()
	for range n {
		o := newOrigin(t)
		tn := &testNode{o: o, store: newMemStore(), parts: parts}
		listen, opts := sw.sim.Host()
		svc, err := Start(context.Background(), Config{
			Key: o.Key, Store: tn.store, Swarm: "scale", ListenAddrs: []string{listen},
			Gater: parts.Gater(o.ID), HostOptions: opts, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		tn.svc = svc
		t.Cleanup(func() { svc.Close() })
		sw.nodes = append(sw.nodes, tn)
		sw.listens = append(sw.listens, listen)
	}
	seen := map[[2]int]bool{}
	for i := range n {
		targets := []int{(i + 1) % n}
		for len(targets) < 4 {
			if j := sw.r.IntN(n); j != i && !slices.Contains(targets, j) {
				targets = append(targets, j)
			}
		}
		for _, j := range targets {
			e := [2]int{min(i, j), max(i, j)}
			if !seen[e] {
				seen[e] = true
				sw.edges = append(sw.edges, e)
			}
		}
	}
	sw.dial(sw.edges)
	return sw
}

// dial connects the node pairs of edges, in parallel.
func (sw *simSwarm) dial(edges [][2]int) {
	var wg sync.WaitGroup
	for _, e := range edges {
		a, b := sw.nodes[e[0]], sw.nodes[e[1]]
		wg.Go(func() {
			h := b.svc.Host()
			if err := a.svc.Host().Connect(context.Background(), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
				sw.t.Errorf("dial: %v", err)
			}
		})
	}
	wg.Wait()
}

func (sw *simSwarm) received() []int64 {
	out := make([]int64, len(sw.nodes))
	for i, l := range sw.listens {
		out[i] = sw.sim.Received(l)
	}
	return out
}

// await waits until every node of among holds every stream of origins up
// to where its origin holds it, and returns how long that took.
func (sw *simSwarm) await(what string, among []*testNode, origins ...*testNode) time.Duration {
	start := time.Now()
	tops := make([]int64, len(origins))
	for i, o := range origins {
		_, tops[i] = o.store.Head(o.o.Stream)
	}
	testnet.WaitFor(sw.t, 10*time.Minute, what, func() (bool, string) {
		for _, n := range among {
			for i, o := range origins {
				if _, off := n.store.Head(o.o.Stream); off != tops[i] {
					return false, fmt.Sprintf("a node holds %s up to %d of %d", o.o.Stream, off, tops[i])
				}
			}
		}
		return true, ""
	})
	return time.Since(start)
}

func scaleSim(t *testing.T, n int) {
	sw := startSimSwarm(t, n)
	nodes := sw.nodes
	for _, tn := range nodes {
		tn.store.Publish(t, sw.r, tn.o, 1)
	}
	warm := sw.await("warm-up", nodes, nodes...)
	t.Logf("%d nodes: warm-up done after %v (virtual); measuring idle", n, warm.Round(10*time.Millisecond))
	time.Sleep(10 * time.Second)

	const idle = 30 * time.Second
	before := sw.received()
	time.Sleep(idle)
	idleRates := perNode(before, sw.received(), idle)

	// Burst.
	origins := nodes[:min(20, n)]
	before = sw.received()
	start := time.Now()
	var stored int64
	for _, o := range origins {
		for _, e := range o.store.Publish(t, sw.r, o.o, 100) {
			stored += int64(chain.EventSize(&e))
		}
	}
	took := sw.await("burst", nodes, origins...)
	t.Logf("%d nodes: burst converged after %v; partitioning", n, took.Round(10*time.Millisecond))
	time.Sleep(5 * time.Second)
	window := time.Since(start)
	burst := perByte(before, sw.received(), idleRates, window, stored)

	// Partition.
	half := n / 2
	left, right := nodes[:half], nodes[half:]
	ids := func(ns []*testNode) []peer.ID {
		var out []peer.ID
		for _, x := range ns {
			out = append(out, x.o.ID)
		}
		return out
	}
	parts := nodes[0].parts
	parts.Split(ids(left), ids(right))
	hosts := make([]host.Host, 0, n)
	for _, x := range nodes {
		hosts = append(hosts, x.svc.Host())
	}
	if err := parts.Enforce(hosts...); err != nil {
		t.Fatal(err)
	}
	lo, ro := left[:min(10, half)], right[:min(10, n-half)]
	var missedL, missedR int64 // bytes each side misses of the other's
	for _, o := range lo {
		for _, e := range o.store.Publish(t, sw.r, o.o, 50) {
			missedR += int64(chain.EventSize(&e))
		}
	}
	for _, o := range ro {
		for _, e := range o.store.Publish(t, sw.r, o.o, 50) {
			missedL += int64(chain.EventSize(&e))
		}
	}
	sw.await("left side", left, lo...)
	sw.await("right side", right, ro...)
	time.Sleep(30 * time.Second)
	before = sw.received()
	start = time.Now()
	parts.Heal()
	var cross [][2]int
	for _, e := range sw.edges {
		if (e[0] < half) != (e[1] < half) {
			cross = append(cross, e)
		}
	}
	sw.dial(cross)
	healed := sw.await("heal", nodes, append(slices.Clone(lo), ro...)...)
	time.Sleep(5 * time.Second)
	window = time.Since(start)
	after := sw.received()
	heal := make([]float64, n)
	for i := range n {
		missed := missedL
		if i >= half {
			missed = missedR
		}
		heal[i] = (float64(after[i]-before[i]) - idleRates[i]*window.Seconds()) / float64(missed)
	}

	var conns []float64
	for _, x := range nodes {
		conns = append(conns, float64(len(x.svc.Host().Network().Peers())))
	}
	t.Logf("%d nodes (%d links, %.1f peers per node): warm-up %v; idle received per node %.0f B/s (max %.0f); "+
		"burst of 100 events on %d nodes: all hold all after %v, received per node %.2fx the bytes stored beyond idle (max %.2fx); "+
		"partition in halves, 50 events on %d+%d nodes: all hold all %v after the heal, received per node %.2fx the bytes it missed (max %.2fx)",
		n, len(sw.edges), mean(conns), warm.Round(10*time.Millisecond), mean(idleRates), slices.Max(idleRates),
		len(origins), took.Round(10*time.Millisecond), mean(burst), slices.Max(burst),
		len(lo), len(ro), healed.Round(10*time.Millisecond), mean(heal), slices.Max(heal))
}

func perNode(before, after []int64, d time.Duration) []float64 {
	out := make([]float64, len(before))
	for i := range before {
		out[i] = float64(after[i]-before[i]) / d.Seconds()
	}
	return out
}

func perByte(before, after []int64, idle []float64, window time.Duration, bytes int64) []float64 {
	out := make([]float64, len(before))
	for i := range before {
		out[i] = (float64(after[i]-before[i]) - idle[i]*window.Seconds()) / float64(bytes)
	}
	return out
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
