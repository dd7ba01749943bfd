package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/internal/testnet"
	"github.com/edgelog/edgelog/replicate"
	"github.com/edgelog/edgelog/replicate/p2p"
	"github.com/edgelog/edgelog/replicate/replicatetest/liar"
)

// Cluster tests: several nodes in this process, on the simulated network
// in synctest bubbles (newSimCluster) or over loopback libp2p (newCluster,
// the end-to-end check and the benchmarks), partitioned by connection
// gaters that refuse connections across sides and close the ones already
// open. EDGELOG_TEST_LOG=1 prints every node's debug log to stderr.

// cluster is a set of replicating nodes in one swarm; a nil entry is a
// node that is stopped.
type cluster struct {
	t      testing.TB
	swarm  string
	parts  *testnet.Partitions
	dirs   []string
	gaters []*testnet.Gater
	nodes  []*Node
	ids    []peer.ID
	logs   []*logRecorder
	mod    func(*Config) // applied to every node's config last, if set
	sim    *testnet.Sim  // if set, nodes run on it instead of loopback
}

// newCluster starts n nodes, each dialling all nodes started before it;
// mod, if given, adjusts each node's config.
func newCluster(t testing.TB, n int, mod ...func(*Config)) *cluster {
	t.Helper()
	return startCluster(t, nil, n, mod...)
}

// newSimCluster is newCluster on the simulated network of newSim; call it
// inside a synctest bubble.
func newSimCluster(t testing.TB, n int, mod ...func(*Config)) *cluster {
	t.Helper()
	return startCluster(t, newSim(t), n, mod...)
}

func startCluster(t testing.TB, sim *testnet.Sim, n int, mod ...func(*Config)) *cluster {
	t.Helper()
	c := &cluster{sim: sim, t: t, swarm: "cluster-" + t.Name(), parts: testnet.NewPartitions(),
		dirs: make([]string, n), gaters: make([]*testnet.Gater, n), nodes: make([]*Node, n), ids: make([]peer.ID, n), logs: make([]*logRecorder, n)}
	for i := range n {
		c.dirs[i] = t.TempDir()
		c.gaters[i] = c.parts.Gater("")
		c.logs[i] = &logRecorder{}
	}
	if len(mod) > 0 {
		c.mod = mod[0]
	}
	for i := range n {
		c.start(i)
	}
	return c
}

// start opens node i (again), dialling every running node it may reach.
func (c *cluster) start(i int) {
	c.t.Helper()
	var boot []string
	for j, n := range c.nodes {
		if n != nil && j != i && (c.ids[i] == "" || c.parts.Allowed(c.ids[i], c.ids[j])) {
			boot = append(boot, n.ListenAddrs()[0])
		}
	}
	n := openTest(c.t, c.dirs[i], func(cfg *Config) {
		cfg.Store.Logger = slog.New(c.logs[i])
		if os.Getenv("EDGELOG_TEST_LOG") != "" { // debug aid: every node's log on stderr
			cfg.Store.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i)
		}
		replicating(c.sim, c.swarm, boot...)(cfg)
		cfg.Replication.gater = c.gaters[i]
		if c.mod != nil {
			c.mod(cfg)
		}
	})
	id, err := peer.Decode(n.NodeID())
	if err != nil {
		c.t.Fatal(err)
	}
	c.gaters[i].SetSelf(id)
	c.nodes[i], c.ids[i] = n, id
}

// stop closes node i.
func (c *cluster) stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].Close(); err != nil {
		c.t.Fatal(err)
	}
	c.nodes[i] = nil
}

// partition puts the listed nodes on their sides (the first group on side
// 1, the next on side 2, ...) and closes every connection across sides.
func (c *cluster) partition(groups ...[]int) {
	c.t.Helper()
	ids := make([][]peer.ID, len(groups))
	for g, idx := range groups {
		for _, i := range idx {
			ids[g] = append(ids[g], c.ids[i])
		}
	}
	c.parts.Split(ids...)
	c.enforce()
}

// cutLink forbids nodes i and j to connect and closes their connections.
func (c *cluster) cutLink(i, j int) {
	c.t.Helper()
	c.parts.Cut(c.ids[i], c.ids[j])
	c.enforce()
}

// enforce closes every connection the partitions forbid.
func (c *cluster) enforce() {
	c.t.Helper()
	var hosts []host.Host
	for _, n := range c.nodes {
		if n != nil {
			hosts = append(hosts, n.repl.Host())
		}
	}
	if err := c.parts.Enforce(hosts...); err != nil {
		c.t.Fatal(err)
	}
}

// heal puts every node back on one side and reconnects all running nodes
// pairwise, in parallel (as discovery would).
func (c *cluster) heal() {
	c.t.Helper()
	c.parts.Heal()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i, a := range c.nodes {
		for j := i + 1; j < len(c.nodes); j++ {
			if b := c.nodes[j]; a != nil && b != nil && a.repl.Host().Network().Connectedness(c.ids[j]) != network.Connected {
				wg.Go(func() {
					if err := dialPeer(a, b); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				})
			}
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		c.t.Fatalf("heal: %v", errs)
	}
}

// dial connects node a to node b or fails the test.
func (c *cluster) dial(a, b *Node) {
	c.t.Helper()
	if err := dialPeer(a, b); err != nil {
		c.t.Fatal(err)
	}
}

// dialPeer connects a to b, retrying for up to 10s: a dial refused by a
// gater a moment ago may still be in libp2p's dial backoff, and a
// simultaneous dial from the other side may fail this one.
func dialPeer(a, b *Node) error {
	h := b.repl.Host()
	ai := peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(network.WithForceDirectDial(context.Background(), "test heal"), 5*time.Second)
		err := a.repl.Host().Connect(ctx, ai)
		cancel()
		if err == nil || a.repl.Host().Network().Connectedness(h.ID()) == network.Connected {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dial %s: %w", h.ID(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running returns the indexes of running nodes, or idx if given.
func (c *cluster) running(idx []int) []int {
	if len(idx) > 0 {
		return idx
	}
	var out []int
	for i, n := range c.nodes {
		if n != nil {
			out = append(out, i)
		}
	}
	return out
}

// publishBatches publishes batches × size events on node i, one publish
// (one signed head) per batch.
func (c *cluster) publishBatches(i, batches, size int, tag string) {
	c.t.Helper()
	for b := range batches {
		drafts := make([]event.Draft, size)
		for k := range drafts {
			drafts[k] = event.Draft{Tags: []string{tag, fmt.Sprintf("node:%d", i)}, Payload: payload(c.t, fmt.Sprintf("%s node %d batch %d event %d", tag, i, b, k))}
		}
		if _, err := c.nodes[i].Publish(context.Background(), "com.example.cluster", drafts); err != nil {
			c.t.Fatalf("publish on node %d: %v", i, err)
		}
	}
}

// waitConverged waits up to d until the given nodes (default: all
// running) hold the same offsets covering want events, then checks they
// show identical events in identical merged order, and returns that order
// and how long convergence took.
func (c *cluster) waitConverged(d time.Duration, want int, idx ...int) ([]*event.Event, time.Duration) {
	c.t.Helper()
	idx = c.running(idx)
	nodes := make([]*Node, len(idx))
	for k, i := range idx {
		nodes[k] = c.nodes[i]
	}
	took := awaitOffsets(c.t, d, want, nodes...)
	return c.checkIdentical(idx...), took
}

// checkIdentical queries all events on the given nodes and fails unless
// each shows the same events (every field) in the same order.
func (c *cluster) checkIdentical(idx ...int) []*event.Event {
	c.t.Helper()
	idx = c.running(idx)
	ref := queryAll(c.t, c.nodes[idx[0]])
	for _, i := range idx[1:] {
		got := queryAll(c.t, c.nodes[i])
		if len(got) != len(ref) {
			c.t.Fatalf("node %d shows %d events, node %d shows %d", i, len(got), idx[0], len(ref))
		}
		for k := range ref {
			if !reflect.DeepEqual(got[k], ref[k]) {
				c.t.Fatalf("position %d: node %d shows %+v, node %d shows %+v", k, i, *got[k], idx[0], *ref[k])
			}
		}
	}
	for k := 1; k < len(ref); k++ {
		if !ref[k-1].Key().Less(ref[k].Key()) {
			c.t.Fatalf("merged order broken at %d: %v then %v", k, ref[k-1].Key(), ref[k].Key())
		}
	}
	return ref
}

func queryAll(t testing.TB, n *Node) []*event.Event {
	t.Helper()
	return query(t, n, event.QueryRequest{Query: aql.MustParse("FROM allEvents")})
}

// countStream counts the events of the node's streams held by n.
func countStream(t testing.TB, n *Node, origin *Node) int {
	t.Helper()
	o, err := n.Offsets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for s, v := range o.Present {
		if s.Node() == origin.NodeID() {
			total += int(v) + 1
		}
	}
	return total
}

// TestClusterPartitionHeal: three nodes write, split 1 | 2, write on both
// sides, heal, and converge on identical events in identical order; a
// later event on the lone node sorts after everything it received.
func TestClusterPartitionHeal(t *testing.T) {
	if testing.Short() {
		t.Skip("network test")
	}
	partitionHeal(t, newCluster(t, 3))
}

// TestSimClusterPartitionHeal is TestClusterPartitionHeal on a simulated
// network in a synctest bubble: virtual time, so the waits do not depend
// on the machine's load.
func TestSimClusterPartitionHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		partitionHeal(t, newSimCluster(t, 3))
	})
}

// partitionHeal: three nodes write, converge, are split one against two,
// write on both sides (nothing crosses), heal and converge, and a new
// event sorts after everything seen.
func partitionHeal(t *testing.T, c *cluster) {
	for i := range 3 {
		c.publishBatches(i, 2, 10, "before")
	}
	c.waitConverged(60*time.Second, 60)

	c.partition([]int{0}, []int{1, 2})
	for i := range 3 {
		c.publishBatches(i, 3, 10, "during")
	}
	// Each side converges on its own; nothing crosses.
	c.waitConverged(60*time.Second, 60+30+30, 1, 2)
	if n := countStream(t, c.nodes[0], c.nodes[1]); n != 20 {
		t.Fatalf("node 0 holds %d events of node 1 during the partition, want 20", n)
	}
	if n := countStream(t, c.nodes[1], c.nodes[0]); n != 20 {
		t.Fatalf("node 1 holds %d events of node 0 during the partition, want 20", n)
	}

	c.heal()
	all, took := c.waitConverged(60*time.Second, 150)
	t.Logf("3 nodes converged %v after heal", took)
	m := publish(t, c.nodes[0], "after")
	if last := all[len(all)-1].Lamport; m.Lamport <= last {
		t.Fatalf("node 0's new event has lamport %d, not above %d", m.Lamport, last)
	}
	c.waitConverged(30*time.Second, 151)
}

// TestClusterOfflineNodeCatchesUp: a node is stopped while the others,
// themselves partitioned, keep writing; it returns on one side, then the
// partition heals, and all converge.
// It runs on a simulated network in a synctest bubble (virtual time).
func TestClusterOfflineNodeCatchesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { offlineCatchesUp(t, newSimCluster(t, 5)) })
}

func offlineCatchesUp(t *testing.T, c *cluster) {
	for i := range 5 {
		c.publishBatches(i, 1, 10, "before")
	}
	c.waitConverged(60*time.Second, 50)

	c.stop(4)
	c.partition([]int{0, 1}, []int{2, 3, 4})
	for i := range 4 {
		c.publishBatches(i, 20, 10, "offline")
	}
	c.waitConverged(60*time.Second, 50+400, 2, 3)
	c.start(4) // dials 2 and 3 only: the gaters refuse 0 and 1
	c.waitConverged(60*time.Second, 50+400, 2, 3, 4)
	if n := countStream(t, c.nodes[4], c.nodes[0]); n != 10 {
		t.Fatalf("node 4 holds %d events of node 0 through a partition, want 10", n)
	}
	c.heal()
	_, took := c.waitConverged(60*time.Second, 850)
	t.Logf("5 nodes converged %v after heal", took)
}

// TestClusterTenNodesSplitHalves: ten nodes split in halves of five, each
// node writes 50 events, each half converges, heal, all converge. It runs
// on a simulated network in a synctest bubble (virtual time).
func TestClusterTenNodesSplitHalves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { tenNodesSplitHalves(t, newSimCluster(t, 10)) })
}

func tenNodesSplitHalves(t *testing.T, c *cluster) {
	start := time.Now()
	c.partition([]int{0, 1, 2, 3, 4}, []int{5, 6, 7, 8, 9})
	for i := range 10 {
		c.publishBatches(i, 5, 10, "split")
	}
	c.waitConverged(90*time.Second, 250, 0, 1, 2, 3, 4)
	c.waitConverged(90*time.Second, 250, 5, 6, 7, 8, 9)
	t.Logf("halves converged %v after the split", time.Since(start))
	heal := time.Now()
	c.heal()
	dialled := time.Since(heal)
	_, took := c.waitConverged(90*time.Second, 500)
	t.Logf("10 nodes converged %v after the heal began (%v of it dialling)", took+dialled, dialled)
}

// copyStream copies stream s from src into dst through replication's
// Store interface, checkpoint by checkpoint.
func copyStream(t *testing.T, src, dst *Node, s event.StreamID) {
	t.Helper()
	var pending []event.Event
	for en, err := range src.ReadRange(context.Background(), s, -1, 1<<62) {
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, en.Event)
		if en.Head != nil {
			if err := replicate.Ingest(context.Background(), dst, pending, *en.Head); err != nil {
				t.Fatal(err)
			}
			pending = nil
		}
	}
	if len(pending) > 0 {
		t.Fatalf("%d events of %s after the last checkpoint", len(pending), s)
	}
}

// TestClusterLyingRelay: C hears of A's stream only from a liar L that
// holds A's events (with A's valid signed heads, so its announces verify)
// but serves them altered, with a broken signature, or not at all; in
// events (pull protocol 1) or in record blocks (pull protocol 2). Nothing
// of A's stream lands at C, C logs the liar, and once an honest path
// exists C catches up from it although the liar is still there.
// It runs on a simulated network in a synctest bubble (virtual time).
func TestClusterLyingRelay(t *testing.T) {
	for _, blocks := range []bool{false, true} {
		for _, mode := range liar.Modes {
			name := string(mode)
			if blocks {
				name = "blocks/" + name
			}
			t.Run(name, func(t *testing.T) { synctest.Test(t, func(t *testing.T) { lyingRelay(t, mode, blocks) }) })
		}
	}
}

func lyingRelay(t *testing.T, mode liar.Mode, blocks bool) {
	c := newSimCluster(t, 2) // A = 0, C = 1
	a, cn := c.nodes[0], c.nodes[1]
	c.partition([]int{0}, []int{1})
	c.publishBatches(0, 5, 20, "a")
	c.publishBatches(1, 1, 5, "c")

	// The liar's store: another node holding A's stream.
	held := openTest(t, t.TempDir())
	copyStream(t, a, held, a.DefaultStream())
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	liarID, _ := peer.IDFromPrivateKey(key)
	c.parts.Split(nil, []peer.ID{liarID}) // side 2, with C, cut from A
	lying := liar.New(held.Store, liarID.String(), mode)
	listen, opts := c.sim.Host()
	liarSvc, err := p2p.Start(context.Background(), p2p.Config{
		Key: key, Store: lying, HostOptions: opts,
		Swarm: c.swarm, ListenAddrs: []string{listen}, Heartbeat: 200 * time.Millisecond,
		Bootstrap: []peer.AddrInfo{{ID: c.ids[1], Addrs: cn.repl.Host().Addrs()}},
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { liarSvc.Close() })
	if !blocks {
		// Only pull protocol 1, as an older node speaks it.
		liarSvc.Host().RemoveStreamHandler(p2p.PullBlocksProtocol)
	}

	// C learns A's heads from the liar and tries to pull from it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, _ := cn.Offsets(context.Background())
		if o.ToReplicate[a.DefaultStream()] == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("C never heard of A's stream from the liar: %v", o.ToReplicate)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var evidence []string
	if mode == liar.Withhold || mode == liar.Truncate {
		// Not proof of malice: C backs off the liar and stores nothing.
		evidence = waitStuck(t, cn, a.DefaultStream(), 2*time.Second)
	} else {
		deadline = time.Now().Add(15 * time.Second)
		for {
			if evidence = c.logs[1].grep("fails verification", liarID.String()); evidence != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("C logged nothing about the liar; its warnings: %q", c.logs[1].grep(""))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("C: %s", evidence[0])
	if blocks && lying.BlockReads.Load() == 0 {
		t.Fatal("C did not pull from the liar in blocks")
	}
	if n := countStream(t, cn, a); n != 0 {
		t.Fatalf("C stored %d events of A from the liar", n)
	}
	for _, e := range queryAll(t, cn) {
		if e.Stream.Node() == a.NodeID() {
			t.Fatalf("C's query shows A's event %v served by the liar", e.Key())
		}
	}

	// An honest path: C may reach A. C catches up from A, with the
	// liar still in the swarm.
	c.parts.Split(nil, []peer.ID{c.ids[0]})
	c.dial(cn, a)
	c.waitConverged(30*time.Second, 105)
}

// waitStuck watches C for d and returns a line saying it stored nothing of
// stream, or fails if it stored something.
func waitStuck(t *testing.T, n *Node, s event.StreamID, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		o, _ := n.Offsets(context.Background())
		if _, ok := o.Present[s]; ok {
			t.Fatalf("stored events of %s from a peer that withholds them", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	o, _ := n.Offsets(context.Background())
	return []string{fmt.Sprintf("after %v still nothing of %s, toReplicate %d", d, s, o.ToReplicate[s])}
}
