package testnet

import (
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Partitions decides which libp2p peers of a test may connect: each peer
// is on a side (side 0 unless Split places it) and single links can be
// cut. Peers on different sides, or whose link is cut, may not connect.
// Its Gaters refuse such connections; Enforce closes those already open.
// It is safe for concurrent use.
type Partitions struct {
	mu   sync.Mutex
	side map[peer.ID]int
	cut  map[[2]peer.ID]bool
}

// NewPartitions returns partitions in which every peer may connect.
func NewPartitions() *Partitions {
	return &Partitions{side: map[peer.ID]int{}, cut: map[[2]peer.ID]bool{}}
}

func link(a, b peer.ID) [2]peer.ID {
	if b < a {
		a, b = b, a
	}
	return [2]peer.ID{a, b}
}

// Allowed reports whether a and b may connect.
func (p *Partitions) Allowed(a, b peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.side[a] == p.side[b] && !p.cut[link(a, b)]
}

// Split puts the peers of groups[i] on side i+1; peers not listed keep
// their side.
func (p *Partitions) Split(groups ...[]peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for g, ids := range groups {
		for _, id := range ids {
			p.side[id] = g + 1
		}
	}
}

// Cut forbids a and b to connect.
func (p *Partitions) Cut(a, b peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut[link(a, b)] = true
}

// Heal puts every peer back on one side and restores every cut link.
func (p *Partitions) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.side)
	clear(p.cut)
}

// Enforce closes every connection of hosts that the partitions forbid, and
// returns an error if one is still open afterwards (the gaters must then
// have let it through).
func (p *Partitions) Enforce(hosts ...host.Host) error {
	for _, h := range hosts {
		nw := h.Network()
		for _, q := range nw.Peers() {
			if !p.Allowed(h.ID(), q) {
				nw.ClosePeer(q)
			}
		}
	}
	for _, h := range hosts {
		for _, q := range h.Network().Peers() {
			if !p.Allowed(h.ID(), q) {
				return fmt.Errorf("%s still connected to %s across the partition", h.ID(), q)
			}
		}
	}
	return nil
}

// Gater returns a connection gater for one peer that refuses what the
// partitions forbid. Its peer ID may be set later (SetSelf), for a node
// whose key is made when it starts; until then it allows everything.
func (p *Partitions) Gater(self peer.ID) *Gater {
	return &Gater{parts: p, self: self}
}

// Gater is one peer's libp2p connection gater over shared Partitions.
type Gater struct {
	parts *Partitions
	mu    sync.Mutex
	self  peer.ID
}

// SetSelf sets the ID of the peer g guards.
func (g *Gater) SetSelf(id peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.self = id
}

func (g *Gater) ok(p peer.ID) bool {
	g.mu.Lock()
	self := g.self
	g.mu.Unlock()
	return self == "" || g.parts.Allowed(self, p)
}

// InterceptPeerDial implements connmgr.ConnectionGater.
func (g *Gater) InterceptPeerDial(p peer.ID) bool { return g.ok(p) }

// InterceptAddrDial implements connmgr.ConnectionGater.
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.ok(p) }

// InterceptAccept implements connmgr.ConnectionGater; the peer is not
// known yet, so InterceptSecured decides.
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured implements connmgr.ConnectionGater.
func (g *Gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.ok(p)
}

// InterceptUpgraded implements connmgr.ConnectionGater.
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
