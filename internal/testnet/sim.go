package testnet

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/x/simlibp2p"
	"github.com/marcopolo/simnet"
)

// Sim is a simulated network for libp2p hosts (QUIC over simnet, package
// go-libp2p/x/simlibp2p), for tests that run inside a testing/synctest
// bubble: time is virtual, so a test waits as long as replication needs
// without taking that long, and no packet leaves the process. WaitFor
// works inside the bubble as it does outside.
type Sim struct {
	nw   *simnet.Simnet
	link simnet.NodeBiDiLinkSettings
	mu   sync.Mutex
	next int
}

// NewSim starts a network whose links have latency each way and
// bitsPerSecond in each direction; it closes when t ends. Call it inside
// the bubble.
func NewSim(t testing.TB, latency time.Duration, bitsPerSecond int) *Sim {
	s := &Sim{nw: &simnet.Simnet{LatencyFunc: simnet.StaticLatency(latency)}, link: simnet.NodeBiDiLinkSettings{
		Downlink: simnet.LinkSettings{BitsPerSecond: bitsPerSecond},
		Uplink:   simnet.LinkSettings{BitsPerSecond: bitsPerSecond},
	}}
	s.nw.Start()
	t.Cleanup(func() { s.nw.Close() })
	return s
}

// Host returns the listen address of the network's next host and the
// libp2p options that put a host on the network.
func (s *Sim) Host() (listen string, opts []libp2p.Option) {
	s.mu.Lock()
	i := s.next
	s.next++
	s.mu.Unlock()
	return fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", simnet.IntToPublicIPv4(i)), []libp2p.Option{
		simlibp2p.QUICSimnet(s.nw, s.link),
		// Identify's address discovery stalls synctest (see simlibp2p).
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	}
}
