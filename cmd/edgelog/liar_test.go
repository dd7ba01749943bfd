package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelog/edgelog/api/client"
	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/internal/promises"
	"github.com/edgelog/edgelog/replicate"
	"github.com/edgelog/edgelog/replicate/p2p"
	"github.com/edgelog/edgelog/replicate/replicatetest/liar"
	"github.com/edgelog/edgelog/store"
)

// liarEnv carries a liarConfig (JSON) to TestLiarChild.
const liarEnv = "LAB_LIAR_CONFIG" // not EDGELOG_*: TestMain clears those

// liarConfig tells the lying peer where to join and what to hold.
type liarConfig struct {
	Swarm       string
	Listen      string   // the liar's multiaddr
	FloodListen string   // the flooder's
	Bootstrap   []string // multiaddrs ending in /p2p/<NodeId>
	Stream      event.StreamID
	Want        uint64 // the offset of Stream to hold before lying
	Lifetime    time.Duration
}

var liarReadyRE = regexp.MustCompile(`liar ready: (\S+ \S+)`)

// TestLiarChild is the lying peer of TestLyingPeerProcess, run as a
// process of its own in the lab's namespace (it skips otherwise). It joins
// the swarm as an honest node until it holds cfg.Stream up to cfg.Want,
// so that its announces carry the origin's true heads; from then on it
// serves every pull a lie (altered payloads, broken signatures, nothing,
// transfers cut short, endless answers, in turn: package liar). A second
// identity, the flooder, connects to every peer the liar meets and floods
// the gossip topic with forged heads of that stream, validly signed heads
// of a stream it cannot serve, and garbage. It ends after cfg.Lifetime.
func TestLiarChild(t *testing.T) {
	cfgJSON := os.Getenv(liarEnv)
	if cfgJSON == "" {
		t.Skip("the lying peer of TestLyingPeerProcess: runs only as its child process")
	}
	var cfg liarConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Lifetime)
	defer cancel()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	var boot []peer.AddrInfo
	for _, s := range cfg.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			t.Fatal(err)
		}
		boot = append(boot, *ai)
	}
	raw, err := key.Raw()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{InMemory: true, Key: ed25519.PrivateKey(raw), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lying := liar.New(st, id.String(), liar.Honest)
	svc, err := p2p.Start(ctx, p2p.Config{Key: key, Store: lying, Swarm: cfg.Swarm, ListenAddrs: []string{cfg.Listen},
		Bootstrap: boot, Heartbeat: time.Second, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	var head chain.SignedHead
	for {
		heads, err := st.Heads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if h, ok := heads[cfg.Stream]; ok && h.Offset >= cfg.Want {
			head = h
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("never held %s up to %d", cfg.Stream, cfg.Want)
		case <-time.After(50 * time.Millisecond):
		}
	}
	lying.Rotate()

	fkey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	fid, _ := peer.IDFromPrivateKey(fkey)
	fh, err := libp2p.New(libp2p.Identity(fkey), libp2p.ListenAddrStrings(cfg.FloodListen))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	ps, err := pubsub.NewGossipSub(ctx, fh) // no validation: it sends what it likes
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(p2p.Topic(cfg.Swarm))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
		}
	}()
	floods := liarFloods(t, fid, fkey, head)
	fmt.Fprintf(os.Stderr, "liar ready: %s %s\n", id, fid)

	var sent atomic.Int64
	report := time.NewTicker(2 * time.Second)
	defer report.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		for _, p := range svc.Host().Network().Peers() {
			if p != fid && len(fh.Network().ConnsToPeer(p)) == 0 {
				_ = fh.Connect(ctx, peer.AddrInfo{ID: p, Addrs: svc.Host().Peerstore().Addrs(p)})
			}
		}
		if err := topic.Publish(ctx, floods[i%len(floods)]); err == nil {
			sent.Add(1)
		}
		select {
		case <-report.C:
			fmt.Fprintf(os.Stderr, "liar: %d lying reads served (%d in blocks), %d floods sent\n", lying.Reads.Load(), lying.BlockReads.Load(), sent.Load())
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// liarFloods returns the flooder's messages: an announce of head with its
// offset raised (the signature no longer fits), an announce of a stream of
// the flooder's own, validly signed, that it cannot serve, and garbage.
func liarFloods(t *testing.T, fid peer.ID, fkey crypto.PrivKey, head chain.SignedHead) [][]byte {
	raw, err := fkey.Raw()
	if err != nil {
		t.Fatal(err)
	}
	forged := head
	forged.Offset += 1000
	unservable, err := chain.SignHead(ed25519.PrivateKey(raw), chain.Head{Stream: event.NewStreamID(fid.String(), 0), Offset: 1_000_000, Lamport: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, h := range []chain.SignedHead{forged, unservable} {
		b, err := replicate.EncodeAnnounce(replicate.Announce{Node: fid.String(), Heads: []chain.SignedHead{h}}, replicate.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	garbage := make([]byte, 512)
	for i := range garbage {
		garbage[i] = byte(rand.IntN(256))
	}
	return append(out, garbage)
}

// TestLyingPeerProcess: real edgelog nodes A and B and a lying peer (a
// process of its own, TestLiarChild) in network namespaces. The liar first
// holds A's stream honestly; then A is cut off, B starts knowing only the
// liar, hears of A's stream from it and is served lies, while the flooder
// floods both nodes with forged and unservable announces and garbage. B
// stores nothing of A's stream and scores the liar and the flooder below
// zero. When A's link comes back, B finds A and both converge: the
// promise checker finds every event on both, identical, with the liar
// still lying.
func TestLyingPeerProcess(t *testing.T) {
	lab := newNetnsLab(t, 3)
	a, b, l := lab.hosts[0], lab.hosts[1], lab.hosts[2]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ca := labClient(t, a.start())
	ledger := promises.NewLedger()
	streamA := liarPublish(t, ctx, ca, ledger, "a", 60)
	idA, err := ca.NodeID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	cfg, _ := json.Marshal(liarConfig{
		Swarm: lab.swarm(), Listen: "/ip4/" + l.swarmIP + "/tcp/4455", FloodListen: "/ip4/" + l.swarmIP + "/tcp/4456",
		Bootstrap: []string{a.p2pAddr(idA)}, Stream: streamA, Want: 59, Lifetime: 150 * time.Second,
	})
	ids := strings.Fields(l.run([]string{os.Args[0], "-test.run=^TestLiarChild$", "-test.v"}, []string{liarEnv + "=" + string(cfg)}, liarReadyRE))
	liarID, flooderID := ids[0], ids[1]

	lab.setLink(0, false)
	b.bootPeer = []string{l.p2pAddr(liarID)}
	cb := labClient(t, b.start())
	streamB := liarPublish(t, ctx, cb, ledger, "b", 20)
	waitChaos(t, lab, 30*time.Second, "B hearing of A's stream from the liar", func() bool {
		o, err := cb.Offsets(ctx)
		return err == nil && o.ToReplicate[streamA] >= 60
	})
	scores := map[string]float64{}
	waitChaos(t, lab, 60*time.Second, "B scoring the liar and the flooder below zero", func() bool {
		info, err := cb.Info(ctx)
		if err != nil {
			return false
		}
		for _, p := range info.Peers {
			scores[p.NodeID] = p.Score
		}
		return scores[liarID] < 0 && scores[flooderID] < 0
	})
	o, err := cb.Offsets(ctx)
	if _, held := o.Present[streamA]; err != nil || held || countLines(b.logPath, "fails verification", liarID) == 0 {
		t.Fatalf("B after the lies: offsets %v (%v), its log names the liar %d times", o.Present, err, countLines(b.logPath, "fails verification", liarID))
	}

	// The honest path comes back: B finds A by mDNS and catches up,
	// with the liar still there.
	lab.setLink(0, true)
	liarPublish(t, ctx, ca, ledger, "a2", 20)
	waitChaos(t, lab, 90*time.Second, "A and B converging with the liar in the swarm", func() bool {
		want := event.OffsetMap{streamA: 79, streamB: 19}
		for _, c := range []*client.Client{ca, cb} {
			o, err := c.Offsets(ctx)
			if err != nil || o.Present[streamA] != want[streamA] || o.Present[streamB] != want[streamB] {
				return false
			}
		}
		return true
	})
	r := promises.Check(ledger, []promises.View{queryView(t, ctx, ca, "A", "FROM 'liar'"), queryView(t, ctx, cb, "B", "FROM 'liar'")})
	for _, v := range r.Violations {
		t.Error(v)
	}
	t.Logf("B: liar scored %.1f, flooder %.1f; %d pulls failed verification; events acknowledged %d, stored on both %d, lost %d; %s",
		scores[liarID], scores[flooderID], countLines(b.logPath, "fails verification", liarID), r.Acked, r.Stored, r.Lost, lastLine(l.logPath, "liar: "))
	if dead, how := l.died(); dead {
		t.Errorf("the liar ended early (%s): the test did not run against it to the end\n%s", how, lab.logTails(20))
	}
}

// labClient is an API client of the node at url.
func labClient(t *testing.T, url string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.Manifest{AppID: "com.example.lab", DisplayName: "lab", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// liarPublish publishes n events tagged "liar" in batches of 20, recording
// them in ledger, and returns their stream.
func liarPublish(t *testing.T, ctx context.Context, c *client.Client, ledger *promises.Ledger, label string, n int) event.StreamID {
	t.Helper()
	var stream event.StreamID
	tags := []string{"liar"}
	for k := 0; k < n; k += 20 {
		evs := make([]client.PublishEvent, min(20, n-k))
		ids := make([]string, len(evs))
		for j := range evs {
			ids[j] = fmt.Sprintf("%s-%d", label, k+j)
			ledger.Attempt(ids[j], tags)
			evs[j] = client.PublishEvent{Tags: tags, Payload: json.RawMessage(fmt.Sprintf(`{"id":%q}`, ids[j]))}
		}
		metas, err := c.Publish(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		for j, m := range metas {
			ledger.Ack(ids[j], m)
			stream = m.Stream
		}
	}
	return stream
}

// lastLine returns the last line of the file at path that contains sub.
func lastLine(path, sub string) string {
	data, _ := os.ReadFile(path)
	last := ""
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.Contains(line, sub) {
			last = line
		}
	}
	return last
}

// countLines counts the lines of the file at path that contain every one
// of subs.
func countLines(path string, subs ...string) int {
	data, _ := os.ReadFile(path)
	n := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}
