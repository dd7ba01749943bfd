package replicate

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/edgelog/edgelog/event"
)

// PullProtocol is the libp2p protocol of pull streams.
const PullProtocol protocol.ID = "/edgelog/pull/1"

// Topic returns the gossip topic of a swarm.
func Topic(swarm string) string { return "edgelog/v1/" + swarm }

// Config configures a Service. Key and Store are required.
type Config struct {
	Key   crypto.PrivKey // the node key; its peer ID is the NodeID
	Store Store
	// Swarm names the gossip topic (default "default").
	Swarm string
	// ListenAddrs are multiaddrs to listen on (default TCP and QUIC on all
	// interfaces, port 0).
	ListenAddrs []string
	// SwarmKey, if set, makes a private network: TCP only, and only nodes
	// with the same key can connect.
	SwarmKey pnet.PSK
	// Bootstrap peers are dialled at start.
	Bootstrap []peer.AddrInfo
	// Heartbeat is the interval of unconditional announces (default 5s).
	Heartbeat time.Duration
	// Gater filters connections (tests use it for partitions).
	Gater   connmgr.ConnectionGater
	Planner PlannerConfig
	Limits  Limits
	Logger  *slog.Logger
}

// Service replicates a Store over libp2p: it gossips heads, serves pulls
// and runs the Planner's pulls. Not yet done: mDNS discovery, the peer
// book, redialling dropped peers, and fresh events riding along in gossip
// (Announce.Fresh is neither sent nor ingested; FreshRange is ready for it).
type Service struct {
	cfg   Config
	log   *slog.Logger
	host  host.Host
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	self  peer.ID

	events chan func(*Planner) // run on the loop goroutine, which owns the planner
	mu     sync.Mutex
	toRep  map[event.StreamID]uint64
	ingest sync.Mutex // one ingest at a time: Ingest checks the present offset

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start builds the libp2p host and starts replicating until Close.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Key == nil || cfg.Store == nil {
		return nil, fmt.Errorf("replicate: Key and Store are required")
	}
	if cfg.Swarm == "" {
		cfg.Swarm = "default"
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With(slog.String("component", "replicate"))
	opts := []libp2p.Option{libp2p.Identity(cfg.Key)}
	if cfg.SwarmKey != nil {
		opts = append(opts, libp2p.PrivateNetwork(cfg.SwarmKey), libp2p.NoTransports, libp2p.Transport(tcp.NewTCPTransport))
		if len(cfg.ListenAddrs) == 0 {
			cfg.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0"}
		}
	}
	if len(cfg.ListenAddrs) > 0 {
		opts = append(opts, libp2p.ListenAddrStrings(cfg.ListenAddrs...))
	}
	if cfg.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.Gater))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("replicate: libp2p host: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMaxMessageSize(cfg.Limits.MaxAnnounceBytes+4096))
	if err != nil {
		cancel()
		h.Close()
		return nil, fmt.Errorf("replicate: pubsub: %w", err)
	}
	topic, err := ps.Join(Topic(cfg.Swarm))
	if err != nil {
		cancel()
		h.Close()
		return nil, fmt.Errorf("replicate: join topic: %w", err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		cancel()
		h.Close()
		return nil, fmt.Errorf("replicate: subscribe: %w", err)
	}
	s := &Service{cfg: cfg, log: log, host: h, ps: ps, topic: topic, self: h.ID(),
		events: make(chan func(*Planner), 256), cancel: cancel}
	h.SetStreamHandler(PullProtocol, func(st network.Stream) { s.serve(ctx, st) })
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: func(n network.Network, c network.Conn) {
		p := c.RemotePeer()
		if n.Connectedness(p) != network.Connected {
			s.send(ctx, func(pl *Planner) { pl.PeerGone(p) })
		}
	}})
	for _, ai := range cfg.Bootstrap {
		if err := h.Connect(ctx, ai); err != nil {
			log.Warn("bootstrap peer unreachable", slog.String("peer", ai.ID.String()), slog.Any("err", err))
		}
	}
	s.wg.Add(3)
	go s.loop(ctx)
	go s.announceLoop(ctx)
	go s.readGossip(ctx, sub)
	return s, nil
}

// Host returns the libp2p host.
func (s *Service) Host() host.Host { return s.host }

// ToReplicate returns, per stream, how many events peers announced beyond
// what the Store holds. The map is the caller's.
func (s *Service) ToReplicate() map[event.StreamID]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[event.StreamID]uint64, len(s.toRep))
	for k, v := range s.toRep {
		out[k] = v
	}
	return out
}

// Close stops replication and the host.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.host.Close()
}

func (s *Service) send(ctx context.Context, f func(*Planner)) {
	select {
	case s.events <- f:
	case <-ctx.Done():
	}
}

// loop owns the Planner: it applies events, refreshes what the store holds,
// ticks, and starts and cancels pulls.
func (s *Service) loop(ctx context.Context) {
	defer s.wg.Done()
	pl := NewPlanner(s.cfg.Planner)
	cancels := map[uint64]context.CancelFunc{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, c := range cancels {
				c()
			}
			return
		case f := <-s.events:
			f(pl)
		case now := <-tick.C:
			pl.Tick(now)
			if heads, err := s.cfg.Store.Heads(ctx); err == nil {
				for st, h := range heads {
					pl.Stored(st, h.Offset)
				}
			}
		}
		rd := pl.Next()
		for _, p := range rd.Cancel {
			s.log.Warn("pull timed out", slog.String("peer", p.Peer.String()), slog.String("stream", string(p.Stream)))
			if c := cancels[p.ID]; c != nil {
				c()
			}
		}
		for _, p := range rd.Start {
			pctx, cancel := context.WithCancel(ctx)
			cancels[p.ID] = cancel
			go func() {
				err := s.pull(pctx, p)
				s.send(ctx, func(pl *Planner) {
					cancel()
					delete(cancels, p.ID)
					if Blame(err) == FaultMisbehaviour {
						s.log.Warn("peer sent data that fails verification", slog.String("peer", p.Peer.String()), slog.Any("err", err))
					} else if err != nil {
						s.log.Debug("pull failed", slog.String("peer", p.Peer.String()), slog.Any("err", err))
					}
					pl.PullDone(p.ID, err)
				})
			}()
		}
		tr := pl.ToReplicate()
		s.mu.Lock()
		s.toRep = tr
		s.mu.Unlock()
	}
}

// pull runs one pull, from what the store holds now up to p.To.
func (s *Service) pull(ctx context.Context, p Pull) error {
	heads, err := s.cfg.Store.Heads(ctx)
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	prev, from := Head{}, int64(-1)
	if h, ok := heads[p.Stream]; ok {
		prev, from = h.Head, int64(h.Offset)
	}
	if from >= int64(p.To) {
		return nil
	}
	st, err := s.host.NewStream(ctx, p.Peer, PullProtocol)
	if err != nil {
		return fmt.Errorf("pull: open stream: %w", err)
	}
	defer st.Close()
	locked := &lockedStore{Store: s.cfg.Store, mu: &s.ingest}
	_, err = Fetch(ctx, locked, st, PullRequest{Stream: p.Stream, From: from, To: p.To}, prev, s.cfg.Limits, func(off uint64) {
		s.send(ctx, func(pl *Planner) { pl.Stored(p.Stream, off) })
	})
	if err != nil && Blame(err) == FaultMisbehaviour {
		st.Reset()
	}
	return err
}

// lockedStore serialises Ingest calls of the service.
type lockedStore struct {
	Store
	mu *sync.Mutex
}

func (l *lockedStore) Ingest(ctx context.Context, events []event.Event, head SignedHead) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Store.Ingest(ctx, events, head)
}

func (s *Service) serve(ctx context.Context, st network.Stream) {
	defer st.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := Serve(ctx, s.cfg.Store, st, s.cfg.Limits)
	if err != nil {
		s.log.Debug("serve pull", slog.String("peer", st.Conn().RemotePeer().String()), slog.String("stream", string(req.Stream)), slog.Any("err", err))
		st.Reset()
	}
}

// announceLoop publishes the store's heads when they change (coalesced)
// and on the heartbeat.
func (s *Service) announceLoop(ctx context.Context) {
	defer s.wg.Done()
	hb := time.NewTicker(s.cfg.Heartbeat)
	defer hb.Stop()
	for {
		changed := s.cfg.Store.Changed()
		if err := s.announce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("announce", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-hb.C:
		}
		// Coalesce a burst of changes into one announce.
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Service) announce(ctx context.Context) error {
	heads, err := s.cfg.Store.Heads(ctx)
	if err != nil {
		return err
	}
	a := Announce{Node: s.self.String()}
	for _, h := range heads {
		if len(a.Heads) == s.cfg.Limits.MaxHeads {
			break
		}
		a.Heads = append(a.Heads, h)
	}
	b, err := EncodeAnnounce(a, s.cfg.Limits)
	if err != nil {
		return err
	}
	return s.topic.Publish(ctx, b)
}

// readGossip verifies announces and feeds their heads to the planner.
func (s *Service) readGossip(ctx context.Context, sub *pubsub.Subscription) {
	defer s.wg.Done()
	defer sub.Cancel()
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		from := msg.GetFrom()
		if from == s.self {
			continue
		}
		a, err := DecodeAnnounce(msg.Data, s.cfg.Limits)
		if err == nil && a.Node != from.String() {
			err = fmt.Errorf("%w: announce of %s sent by %s", ErrMalformed, a.Node, from)
		}
		var heads []Head
		for _, h := range a.Heads {
			if err != nil {
				break
			}
			if err = VerifyHead(h); err == nil {
				heads = append(heads, h.Head)
			}
		}
		if err != nil {
			s.log.Warn("rejected announce", slog.String("peer", from.String()), slog.Any("err", err))
			s.send(ctx, func(pl *Planner) { pl.Penalise(from, err) })
			continue
		}
		s.send(ctx, func(pl *Planner) { pl.PeerAnnounced(from, heads) })
	}
}
