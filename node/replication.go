package node

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/multiformats/go-multiaddr"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/replicate/p2p"
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
	// MaxPeers bounds the connections kept (default p2p.DefaultMaxPeers;
	// see p2p.Config.MaxPeers).
	MaxPeers int `yaml:"maxPeers"`

	// gater filters libp2p connections; this package's cluster tests set it
	// to make and heal partitions.
	gater connmgr.ConnectionGater
	// hostOptions are further libp2p options; the cluster tests put nodes
	// on a simulated network with them.
	hostOptions []libp2p.Option
}

// PeerBookFile is the peer book's file name in the data directory.
const PeerBookFile = "peers.json"

// startReplication starts the libp2p service on n's store.
func (n *Node) startReplication(ctx context.Context, rc *Replication) error {
	cfg := p2p.Config{
		Key:         n.id.Key,
		Store:       n.Store,
		Swarm:       rc.Swarm,
		ListenAddrs: rc.Listen,
		Gater:       rc.gater,
		HostOptions: rc.hostOptions,
		Logger:      n.cfg.Store.Logger,
		MDNS:        rc.MDNS,
		MaxPeers:    rc.MaxPeers,
	}
	if dir := n.cfg.Store.DataDir; dir != "" {
		// Peers connected to are remembered here and redialled after a
		// restart; a node without a data directory forgets them.
		cfg.PeerBookPath = filepath.Join(dir, PeerBookFile)
	}
	for _, s := range rc.Bootstrap {
		ai, err := ParseBootstrap(s)
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
	svc, err := p2p.Start(ctx, cfg)
	if err != nil {
		return err
	}
	n.repl = svc
	n.log.Info("replication started", slog.String("swarm", cfg.Swarm), slog.Bool("private", cfg.SwarmKey != nil), slog.Bool("mdns", cfg.MDNS), slog.String("addrs", strings.Join(n.ListenAddrs(), " ")))
	return nil
}

// CheckListen reports whether s is a multiaddr a node can listen on, such
// as /ip4/0.0.0.0/tcp/4455.
func CheckListen(s string) error {
	if _, err := multiaddr.NewMultiaddr(s); err != nil {
		return fmt.Errorf("replication: listen %q is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/4455): %w", s, err)
	}
	return nil
}

// ParseBootstrap parses a bootstrap address: a multiaddr ending in
// /p2p/<NodeID>.
func ParseBootstrap(s string) (peer.AddrInfo, error) {
	ma, err := multiaddr.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("replication: bootstrap %q is not a multiaddr: %w", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(ma)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("replication: bootstrap %q must end in /p2p/<NodeId>: %w", s, err)
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
		out = append(out, a.String()+"/p2p/"+n.NodeID())
	}
	return out
}

// peerInfo describes the node's peers (see p2p.Service.Peers).
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
