package p2p

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// MDNSServiceName returns the DNS-SD service a swarm's nodes advertise and
// browse on the LAN: "_edgelog-" and six hex digits of the swarm name's
// SHA-256, so that nodes of different swarms do not find (and pointlessly
// dial) each other, within the 15 characters RFC 6763 allows a service
// name.
func MDNSServiceName(swarm string) string {
	sum := sha256.Sum256([]byte(swarm))
	return "_edgelog-" + hex.EncodeToString(sum[:3])
}

// mdnsNotifee hands each peer mDNS finds to found.
type mdnsNotifee func(peer.AddrInfo)

func (f mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) { f(ai) }

// startMDNS advertises h on the LAN's multicast interfaces under swarm's
// service name and calls found for every other node it hears of (possibly
// repeatedly, from other goroutines). Close the result to stop.
func startMDNS(h host.Host, swarm string, found func(peer.AddrInfo)) (mdns.Service, error) {
	svc := mdns.NewMdnsService(h, MDNSServiceName(swarm), mdnsNotifee(found))
	if err := svc.Start(); err != nil {
		return nil, fmt.Errorf("replicate: mdns: %w", err)
	}
	return svc, nil
}
