package testnet

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/marcopolo/simnet"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
)

// Sim is a simulated network for libp2p hosts (QUIC over simnet, as
// go-libp2p/x/simlibp2p sets it up), for tests that run inside a testing/synctest
// bubble: time is virtual, so a test waits as long as replication needs
// without taking that long, and no packet leaves the process. WaitFor
// works inside the bubble as it does outside.
type Sim struct {
	nw    *simnet.Simnet
	link  simnet.NodeBiDiLinkSettings
	mu    sync.Mutex
	next  int
	conns map[string]*simnet.SimConn // by listen multiaddr
}

// NewSim starts a network whose links have latency each way and
// bitsPerSecond in each direction; it closes when t ends. Call it inside
// the bubble.
func NewSim(t testing.TB, latency time.Duration, bitsPerSecond int) *Sim {
	s := &Sim{nw: &simnet.Simnet{LatencyFunc: simnet.StaticLatency(latency)}, conns: map[string]*simnet.SimConn{}, link: simnet.NodeBiDiLinkSettings{
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
	listen = fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", simnet.IntToPublicIPv4(i))
	return listen, []libp2p.Option{
		s.quic(listen),
		// Identify's address discovery stalls synctest (see simlibp2p).
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	}
}

// Received returns the bytes the host listening at listen has received
// (UDP payloads: QUIC packets, as a network interface counts them).
func (s *Sim) Received(listen string) int64 {
	s.mu.Lock()
	c := s.conns[listen]
	s.mu.Unlock()
	if c == nil {
		return 0
	}
	return int64(c.Stats().BytesRcvd)
}

// quic is simlibp2p.QUICSimnet, keeping the host's endpoint so that
// Received can read its counters.
func (s *Sim) quic(listen string) libp2p.Option {
	src := &sourceIP{}
	return libp2p.QUICReuse(
		func(l fx.Lifecycle, resetKey quic.StatelessResetKey, tokenKey quic.TokenGeneratorKey, opts ...quicreuse.Option) (*quicreuse.ConnManager, error) {
			cm, err := quicreuse.NewConnManager(resetKey, tokenKey, opts...)
			if err != nil {
				return nil, err
			}
			l.Append(fx.StopHook(cm.Close)) // a conn manager passed in is not closed by libp2p
			return cm, nil
		},
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) { return src, nil }),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			src.ip.Store(&addr.IP)
			c := s.nw.NewEndpoint(addr, s.link)
			s.mu.Lock()
			s.conns[listen] = c
			s.mu.Unlock()
			return c, nil
		}))
}

// sourceIP answers quicreuse with the host's own address (simlibp2p's
// MockSourceIPSelector, whose setter is not exported).
type sourceIP struct{ ip atomic.Pointer[net.IP] }

func (m *sourceIP) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) {
	return *m.ip.Load(), nil
}
