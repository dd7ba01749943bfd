package node

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/multiformats/go-multiaddr"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
	"github.com/edgelog/edgelog/replicate"
)

// Replication configures peer-to-peer replication. A nil *Replication in
// Config runs the node alone.
type Replication struct {
	// Listen are libp2p multiaddrs (default TCP and QUIC on all interfaces,
	// a random port; TCP only with a swarm key).
	Listen []string `yaml:"listen"`
	// Bootstrap are multiaddrs with /p2p/<NodeID> of peers to dial at start.
	Bootstrap []string `yaml:"bootstrap"`
	// Swarm names the swarm's gossip topic (default "default").
	Swarm string `yaml:"swarm"`
	// SwarmKeyFile is a pre-shared key file (edgelog swarm keygen): only
	// nodes with the same key can connect.
	SwarmKeyFile string `yaml:"swarmKey"`
	// MDNS finds the swarm's nodes on the LAN by multicast DNS and dials
	// them (the CLI turns it on by default).
	MDNS bool `yaml:"mdns"`

	// gater filters libp2p connections; this package's cluster tests set it
	// to make and heal partitions.
	gater connmgr.ConnectionGater
}

// PeerBookFile is the peer book's file name in the data directory.
const PeerBookFile = "peers.json"

// startReplication starts the libp2p service on n's store.
func (n *Node) startReplication(ctx context.Context, rc *Replication) error {
	cfg := replicate.Config{
		Key:         n.id.Key,
		Store:       (*replStore)(n),
		Swarm:       rc.Swarm,
		ListenAddrs: rc.Listen,
		Gater:       rc.gater,
		Logger:      n.cfg.Logger,
		MDNS:        rc.MDNS,
		// Peers connected to are remembered here and redialled after a
		// restart.
		PeerBookPath: filepath.Join(n.cfg.DataDir, PeerBookFile),
	}
	for _, s := range rc.Bootstrap {
		ai, err := parseBootstrap(s)
		if err != nil {
			return err
		}
		cfg.Bootstrap = append(cfg.Bootstrap, ai)
	}
	if rc.SwarmKeyFile != "" {
		f, err := os.Open(rc.SwarmKeyFile)
		if err != nil {
			return fmt.Errorf("replication: swarm key: %w", err)
		}
		defer f.Close()
		if cfg.SwarmKey, err = pnet.DecodeV1PSK(f); err != nil {
			return fmt.Errorf("replication: swarm key %s: %w", rc.SwarmKeyFile, err)
		}
	}
	svc, err := replicate.Start(ctx, cfg)
	if err != nil {
		return err
	}
	n.repl = svc
	var addrs []string
	for _, a := range svc.Host().Addrs() {
		addrs = append(addrs, a.String()+"/p2p/"+n.nodeID)
	}
	n.log.Info("replication started", slog.String("swarm", cfg.Swarm), slog.Bool("private", cfg.SwarmKey != nil), slog.Bool("mdns", cfg.MDNS), slog.String("addrs", strings.Join(addrs, " ")))
	return nil
}

func parseBootstrap(s string) (peer.AddrInfo, error) {
	ma, err := multiaddr.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("replication: bootstrap %q: %w", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(ma)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("replication: bootstrap %q needs /p2p/<NodeID>: %w", s, err)
	}
	return *ai, nil
}

// ListenAddrs returns the node's libp2p addresses with its NodeID, for
// other nodes' bootstrap settings; none if replication is off.
func (n *Node) ListenAddrs() []string {
	if n.repl == nil {
		return nil
	}
	var out []string
	for _, a := range n.repl.Host().Addrs() {
		out = append(out, a.String()+"/p2p/"+n.nodeID)
	}
	return out
}

// replStore is the node seen as replication's Store.
type replStore Node

var _ replicate.Store = (*replStore)(nil)

func (r *replStore) node() *Node { return (*Node)(r) }

// Heads returns the signed head at every stream's present offset.
func (r *replStore) Heads(ctx context.Context) (map[event.StreamID]chain.SignedHead, error) {
	st := r.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make(map[event.StreamID]chain.SignedHead, len(st.heads))
	for sid, h := range st.heads {
		if h != nil && st.present[sid] >= 0 {
			out[st.names[sid]] = *h
		}
	}
	return out, nil
}

// Changed is closed at the next commit.
func (r *replStore) Changed() <-chan struct{} { return r.st.snapshot().changed }

// ReadRange yields the stream's events in (from, to] with the signed heads
// kept at run ends.
func (r *replStore) ReadRange(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	return r.read(ctx, stream, from, to, false)
}

// ReadBlocks yields the stream's events in (from, to] as they are stored,
// in record blocks (block.go) cut at run ends, which are where heads are
// kept, and at from and to.
func (r *replStore) ReadBlocks(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	return r.read(ctx, stream, from, to, true)
}

// read is ReadRange, or ReadBlocks if blocks is set.
func (r *replStore) read(ctx context.Context, stream event.StreamID, from int64, to uint64, blocks bool) iter.Seq2[chain.Entry, error] {
	return func(yield func(chain.Entry, error) bool) {
		n := r.node()
		done, err := n.enter()
		if err != nil {
			yield(chain.Entry{}, err)
			return
		}
		defer done()
		v := n.st.snapshot()
		sid, ok := v.sids[stream]
		if !ok || v.present[sid] < 0 {
			return
		}
		to = min(to, uint64(v.present[sid]))
		txn, end := n.st.beginRead()
		defer end()
		floor, floorHead, err := readFloor(txn, stream, sid)
		if err != nil {
			yield(chain.Entry{}, err)
			return
		}
		if floorHead != nil && from < int64(floor)-1 {
			// Expired below the floor: the answer starts there.
			if !yield(chain.Entry{Floor: floorHead}, nil) {
				return
			}
			from = int64(floor) - 1
		}
		pl := &readPlan{v: v, local: make([]bool, len(v.names))}
		rd := newBlockReader(txn, pl)
		defer rd.close()
		var part []byte // a block cut to the range
		for run, err := range runsFrom(txn, sid, uint64(from+1)) {
			if err != nil {
				yield(chain.Entry{}, err)
				return
			}
			head, err := decodeRunHead(stream, run, run.head)
			if err != nil {
				yield(chain.Entry{}, err)
				return
			}
			// The run's events in (from, to], a block at a time.
			for off := max(run.first, uint64(from+1)); off <= min(run.last(), to); {
				if err := n.checkStop(ctx); err != nil {
					yield(chain.Entry{}, err)
					return
				}
				b, err := rd.at(sid, off, noBlock)
				if err != nil {
					yield(chain.Entry{}, fmt.Errorf("event %d of %s: %w", off, stream, err))
					return
				}
				recs := b.recs[off-b.first : min(uint64(len(b.recs)), min(run.last(), to)-b.first+1)]
				for i, rec := range recs {
					if want := run.lamports[off-run.first+uint64(i)]; rec.lamport != want {
						yield(chain.Entry{}, fmt.Errorf("%w: event %d of %s has Lamport time %d, the stream index says %d", errBadRecord, off+uint64(i), stream, rec.lamport, want))
						return
					}
				}
				last := off + uint64(len(recs)) - 1
				if blocks {
					// The whole block as stored, or the part asked for;
					// the caller copies it (see replicate.BlockStore).
					data := b.val
					if len(recs) < len(b.recs) {
						part = appendBlock(part[:0], recs)
						data = part
					}
					e := chain.Entry{Block: &chain.Block{First: off, Count: len(recs), Data: data}}
					if last == run.last() {
						e.Head = head
					}
					if !yield(e, nil) {
						return
					}
				} else {
					for i, rec := range recs {
						ev, err := pl.decode(pos{lamport: rec.lamport, sid: sid, offset: off + uint64(i)}, rec, allEvents)
						if err != nil {
							yield(chain.Entry{}, err)
							return
						}
						e := chain.Entry{Event: *ev}
						if off+uint64(i) == run.last() {
							e.Head = head
						}
						if !yield(e, nil) {
							return
						}
					}
				}
				off = last + 1
			}
			if run.last() >= to {
				return
			}
		}
	}
}

// Ingest stores a verified range of another node's stream through the
// writer, with the same durability as a publish.
func (r *replStore) Ingest(ctx context.Context, events []event.Event, head chain.SignedHead) error {
	wait, err := r.IngestAsync(ctx, events, head)
	if err != nil {
		return err
	}
	return wait()
}

var _ replicate.ExpiryStore = (*replStore)(nil)

// Expiry returns the floors held and the rules of this node's streams.
func (r *replStore) Expiry() []replicate.StreamExpiry { return r.node().expiryOf() }

// LearnRetention applies the rule a stream's origin announced to the copy
// held here.
func (r *replStore) LearnRetention(stream event.StreamID, rule expiry.Retention) {
	r.node().learnRetention(stream, rule)
}

// SkipTo continues a stream at a peer's floor (see replicate.ExpiryStore).
func (r *replStore) SkipTo(ctx context.Context, floor chain.Head) error {
	if floor.Stream.Node() == r.nodeID {
		return fmt.Errorf("skip: %s is this node's own stream: %w", floor.Stream, chain.ErrStale)
	}
	return r.node().skipTo(ctx, floor)
}

// peerInfo describes the node's peers (see replicate.Service.Peers).
func (n *Node) peerInfo(ctx context.Context) ([]event.PeerInfo, error) {
	ps, err := n.repl.Peers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]event.PeerInfo, len(ps))
	for i, p := range ps {
		pi := event.PeerInfo{
			NodeID: p.ID.String(), Addrs: make([]string, len(p.Addrs)), Connected: p.Connected, Bootstrap: p.Bootstrap,
			LastSeen: p.LastSeen, Announced: p.Announced, Lag: p.Lag, Behind: p.Behind, Score: p.Score,
		}
		if math.IsNaN(pi.Score) || math.IsInf(pi.Score, 0) {
			pi.Score = 0 // JSON has no such numbers
		}
		for j, a := range p.Addrs {
			pi.Addrs[j] = a.String()
		}
		out[i] = pi
	}
	return out, nil
}
