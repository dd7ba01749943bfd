package p2p

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
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
	basicconnmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"golang.org/x/sync/semaphore"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/replicate"
)

// The libp2p protocols of pull streams. PullProtocol answers with events
// in CBOR; PullBlocksProtocol with the serving node's record blocks as
// they are stored (Store.ReadBlocks). A puller offers both, the blocks
// protocol first, so it still pulls from nodes without it.
const (
	PullProtocol       protocol.ID = "/edgelog/pull/1"
	PullBlocksProtocol protocol.ID = "/edgelog/pull/2"
)

// Topic returns the gossip topic of a swarm.
func Topic(swarm string) string { return "edgelog/v1/" + swarm }

// Config configures a Service. Key and Store are required.
type Config struct {
	Key   crypto.PrivKey // the node key; its peer ID is the NodeID
	Store replicate.Store
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
	// Heartbeat is the interval at which a node checks for peers of an
	// older version, and, while one is connected, announces every head it
	// holds, as those nodes expect (default 5s).
	Heartbeat time.Duration
	// SyncInterval is how often a node syncs with a random neighbour
	// (default DefaultSyncInterval); see SyncProtocol.
	SyncInterval time.Duration
	// MaxPeers bounds the connections a node keeps (default
	// DefaultMaxPeers): above it, the connection manager closes the least
	// useful ones down to three quarters of it, and no peer is dialled
	// while that many are connected. Bootstrap peers are kept.
	MaxPeers int
	// MeshDegree is the number of peers gossip sends each announce on
	// to (gossipsub's D; default DefaultMeshDegree): each node receives
	// about that many copies of an announce, and an announce reaches N
	// nodes in about log_D(N) hops.
	MeshDegree int
	// Gater filters connections (tests use it for partitions).
	Gater connmgr.ConnectionGater
	// HostOptions are further libp2p options, applied after the ones above
	// (tests use them to run the host on a simulated network).
	HostOptions []libp2p.Option
	// MDNS advertises the node on the LAN and dials the swarm's nodes it
	// finds there (see MDNSServiceName).
	MDNS bool
	// PeerBookPath is the file of the peer book (see PeerBook): peers
	// connected to are remembered there and redialled after a restart.
	// Empty: no peer book.
	PeerBookPath string
	// PeerBookSize bounds the peer book (default DefaultPeerBookSize).
	PeerBookSize int
	// BookSaveInterval is how often a changed peer book is written
	// (default DefaultBookSaveInterval); it is also written at Close.
	BookSaveInterval time.Duration
	// Redial is the backoff of redialling bootstrap and known peers that
	// are not connected (default DefaultRedialBackoff).
	Redial replicate.Backoff
	// DialTimeout bounds one dial (default 10s).
	DialTimeout time.Duration
	// FreshBytes bounds the fresh events riding along in one announce
	// (default DefaultFreshBytes; Limits.MaxFreshEvents bounds their
	// number). Negative: send none.
	FreshBytes int
	// FreshRepeat is how long an event keeps riding along in announces
	// after it was first sent (default DefaultFreshRepeat), so that a peer
	// that receives a later announce first still gets it without a pull.
	// A full announce that shows a stream unchanged (a heartbeat, sent
	// only while a node of an older version is connected) repeats its
	// events of the last Heartbeat interval (within the bounds above).
	FreshRepeat time.Duration
	// MinAnnounceGap is the least time between two announces: changes
	// within it are coalesced (default 1ms). The gap also grows with the
	// size of the heads announced, so a large swarm's announces take a
	// bounded share of each node's bandwidth (announceGap).
	MinAnnounceGap time.Duration
	// RelayAnnounceGap is the least time between two announces when only
	// relayed streams changed (default DefaultRelayAnnounceGap): the
	// origin's announce carries the news of its streams to every node,
	// so the relays' follow at this pace, not at every event.
	RelayAnnounceGap time.Duration
	Planner          replicate.PlannerConfig
	Limits           replicate.Limits
	Logger           *slog.Logger

	// validated, if set, runs after the gossip validator accepted an
	// announce of another node (tests slow validation down with it).
	validated func(*validAnnounce)
}

// Service replicates a Store over libp2p: it gossips heads with fresh
// events (validated, with peer scoring), serves pulls and runs the
// Planner's pulls; it finds peers by mDNS, bootstrap addresses and its peer
// book, and redials them with backoff when they drop.
type Service struct {
	cfg   Config
	log   *slog.Logger
	host  host.Host
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	self  peer.ID

	events chan func(*replicate.Planner) // run on the loop goroutine, which owns the planner
	mu     sync.Mutex
	toRep  map[event.StreamID]uint64
	serial *serialStore  // cfg.Store, one ingest at a time
	joined chan struct{} // a peer joined the topic: announce now
	// legacy: a peer of an older version is connected (legacyPeers), so
	// announces carry every head.
	legacy    atomic.Bool
	views     syncViews
	rules     ruleBook
	syncWith  chan peer.ID // syncs the sync loop should start
	syncSlots *semaphore.Weighted

	ctx     context.Context // ends at Close
	peerOps chan func(*peerMgr)
	stats   stats
	heads   *headCache
	mdns    io.Closer
	scoreMu sync.Mutex
	scores  map[peer.ID]float64 // gossipsub scores, refreshed every second
	// offences are verification failures outside the gossip validator;
	// they lower the peer's gossip score.
	offences *offences

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
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.MeshDegree <= 0 {
		cfg.MeshDegree = DefaultMeshDegree
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.BookSaveInterval <= 0 {
		cfg.BookSaveInterval = DefaultBookSaveInterval
	}
	if cfg.FreshBytes == 0 {
		cfg.FreshBytes = replicate.DefaultFreshBytes
	}
	if cfg.FreshRepeat <= 0 {
		cfg.FreshRepeat = replicate.DefaultFreshRepeat
	}
	if cfg.MinAnnounceGap <= 0 {
		cfg.MinAnnounceGap = time.Millisecond
	}
	if cfg.RelayAnnounceGap <= 0 {
		cfg.RelayAnnounceGap = replicate.DefaultRelayAnnounceGap
	}
	cfg.Redial = cfg.Redial.WithDefaults()
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
	cm, err := basicconnmgr.NewConnManager(lowPeers(cfg.MaxPeers), cfg.MaxPeers, basicconnmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("replicate: connection manager: %w", err)
	}
	for _, ai := range cfg.Bootstrap {
		cm.Protect(ai.ID, "bootstrap")
	}
	opts = append(opts, libp2p.ConnectionManager(cm))
	h, err := libp2p.New(append(opts, cfg.HostOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("replicate: libp2p host: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Service{cfg: cfg, log: log, host: h, self: h.ID(), ctx: ctx,
		events: make(chan func(*replicate.Planner), 256), joined: make(chan struct{}, 1), cancel: cancel,
		peerOps: make(chan func(*peerMgr), 256), syncWith: make(chan peer.ID, 64), syncSlots: semaphore.NewWeighted(maxServedSyncs), heads: newHeadCache(2 * cfg.Limits.MaxHeads), serial: &serialStore{Store: cfg.Store}}
	// Connection events from here on reach the peers loop (buffered until
	// it runs).
	s.watchConns(ctx)
	s.offences = newOffences(time.Now)
	params, thresholds := scoreParams(Topic(cfg.Swarm), s.offences.score)
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMaxMessageSize(cfg.Limits.MaxAnnounceBytes+4096),
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(s.setScores, time.Second),
		pubsub.WithGossipSubParams(gossipParams(cfg.MeshDegree)),
		// Own announces go to the mesh, like relayed ones, not to every
		// peer in the topic: a node with 64 peers would send each one 64
		// times, and each peer would receive it from the mesh again. A
		// peer that just connected learns what it missed by sync.
		pubsub.WithFloodPublish(false))
	if err != nil {
		cancel()
		h.Close()
		return nil, fmt.Errorf("replicate: pubsub: %w", err)
	}
	if err := ps.RegisterTopicValidator(Topic(cfg.Swarm), s.validate); err != nil {
		cancel()
		h.Close()
		return nil, fmt.Errorf("replicate: topic validator: %w", err)
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
	joins, err := topic.EventHandler()
	if err != nil {
		cancel()
		h.Close()
		return nil, fmt.Errorf("replicate: topic events: %w", err)
	}
	s.ps, s.topic = ps, topic
	h.SetStreamHandler(PullProtocol, func(st network.Stream) { s.serve(ctx, st) })
	h.SetStreamHandler(PullBlocksProtocol, func(st network.Stream) { s.serve(ctx, st) })
	h.SetStreamHandler(SyncProtocol, func(st network.Stream) { s.serveSync(ctx, st) })
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: func(n network.Network, c network.Conn) {
		p := c.RemotePeer()
		if n.Connectedness(p) != network.Connected {
			s.send(ctx, func(pl *replicate.Planner) { pl.PeerGone(replicate.PeerID(p)) })
		}
	}})
	pm := s.initPeers(time.Now())
	s.wg.Add(6)
	go s.syncLoop(ctx)
	go s.loop(ctx)
	go s.announceLoop(ctx)
	go s.readGossip(ctx, sub)
	go s.watchJoins(ctx, joins)
	go s.peersLoop(ctx, pm)
	s.dialBootstrap(ctx)
	if cfg.MDNS {
		m, err := startMDNS(h, cfg.Swarm, func(ai peer.AddrInfo) { s.peerFound(ctx, ai) })
		if err != nil {
			log.Warn("mDNS discovery unavailable", slog.Any("err", err))
		} else {
			s.mdns = m
		}
	}
	return s, nil
}

// dialBootstrap dials the bootstrap peers in parallel and waits for them,
// at most 5 seconds (or DialTimeout), so that a node started with
// reachable bootstrap peers is connected when Start returns. The peers
// loop redials those that fail.
func (s *Service) dialBootstrap(ctx context.Context) {
	if len(s.cfg.Bootstrap) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, min(s.cfg.DialTimeout, 5*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	for _, ai := range s.cfg.Bootstrap {
		if ai.ID == s.self {
			continue
		}
		wg.Go(func() {
			if err := s.host.Connect(ctx, ai); err != nil {
				s.log.Warn("bootstrap peer unreachable, will redial", slog.String("peer", ai.ID.String()), slog.Any("err", err))
			}
		})
	}
	wg.Wait()
}

func (s *Service) setScores(m map[peer.ID]float64) {
	s.scoreMu.Lock()
	s.scores = m
	s.scoreMu.Unlock()
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

// Close stops replication, saves the peer book and closes the host.
func (s *Service) Close() error {
	s.cancel()
	if s.mdns != nil {
		s.mdns.Close()
	}
	s.wg.Wait()
	return s.host.Close()
}

func (s *Service) send(ctx context.Context, f func(*replicate.Planner)) {
	select {
	case s.events <- f:
	case <-ctx.Done():
	}
}

// loop owns the Planner: it applies events, refreshes what the store holds,
// ticks, and starts and cancels pulls.
func (s *Service) loop(ctx context.Context) {
	defer s.wg.Done()
	pl := replicate.NewPlanner(s.cfg.Planner)
	cancels := map[uint64]context.CancelFunc{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	changed := s.cfg.Store.Changed()
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
			select {
			case <-changed: // a publish or an ingest the planner may not know of
				changed = s.cfg.Store.Changed()
				if heads, err := s.cfg.Store.Heads(ctx); err == nil {
					for st, h := range heads {
						pl.Stored(st, h.Offset)
					}
				}
			default:
			}
		}
		rd := pl.Next()
		for _, p := range rd.Cancel {
			s.log.Warn("pull timed out", slog.String("peer", peer.ID(p.Peer).String()), slog.String("stream", string(p.Stream)))
			if c := cancels[p.ID]; c != nil {
				c()
			}
		}
		for _, p := range rd.Start {
			pctx, cancel := context.WithCancel(ctx)
			cancels[p.ID] = cancel
			go func() {
				began := time.Now()
				err := s.pull(pctx, p)
				s.send(ctx, func(pl *replicate.Planner) {
					cancel()
					delete(cancels, p.ID)
					s.log.Debug("pull ended", slog.String("peer", peer.ID(p.Peer).String()), slog.String("stream", string(p.Stream)),
						slog.Int64("from", p.From), slog.Uint64("to", p.To), slog.Duration("took", time.Since(began)), slog.Any("err", err))
					if replicate.Blame(err) == replicate.FaultMisbehaviour {
						s.offences.add(peer.ID(p.Peer))
						s.log.Warn("peer sent data that fails verification", slog.String("peer", peer.ID(p.Peer).String()), slog.Any("err", err))
					} else if err != nil {
						s.log.Debug("pull failed", slog.String("peer", peer.ID(p.Peer).String()), slog.Any("err", err))
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
func (s *Service) pull(ctx context.Context, p replicate.Pull) error {
	heads, err := s.cfg.Store.Heads(ctx)
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	prev, from := chain.Head{}, int64(-1)
	if h, ok := heads[p.Stream]; ok {
		prev, from = h.Head, int64(h.Offset)
	}
	if from >= int64(p.To) {
		// Stored meanwhile (fresh events, another pull). Tell the planner
		// before this pull's PullDone (the loop runs them in order), or it
		// would judge the pull short and back the peer off.
		s.send(ctx, func(pl *replicate.Planner) { pl.Stored(p.Stream, uint64(from)) })
		return nil
	}
	s.stats.pulls.Add(1)
	st, err := s.host.NewStream(ctx, peer.ID(p.Peer), PullBlocksProtocol, PullProtocol)
	if err != nil {
		return fmt.Errorf("pull: open stream: %w", err)
	}
	defer st.Close()
	_, err = replicate.Fetch(ctx, s.serial, st, replicate.PullRequest{Stream: p.Stream, From: from, To: p.To}, prev, s.cfg.Limits, func(off uint64) {
		s.send(ctx, func(pl *replicate.Planner) { pl.Stored(p.Stream, off) })
	})
	if err != nil && replicate.Blame(err) == replicate.FaultMisbehaviour {
		st.Reset()
	}
	if err == nil {
		s.ingested(p.Stream)
	}
	return err
}

func (s *Service) serve(ctx context.Context, st network.Stream) {
	defer st.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var req replicate.PullRequest
	var err error
	if st.Protocol() == PullBlocksProtocol {
		req, err = replicate.ServeBlocks(ctx, s.cfg.Store, st, s.cfg.Limits)
	} else {
		req, err = replicate.Serve(ctx, s.cfg.Store, st, s.cfg.Limits)
	}
	if err != nil {
		s.log.Debug("serve pull", slog.String("peer", st.Conn().RemotePeer().String()), slog.String("stream", string(req.Stream)), slog.Any("err", err))
		st.Reset()
	}
}

// joinAnnounceDelay is how long after a peer joins the topic the join's
// announce waits. Pubsub reports the join when the peer's subscription
// arrives, which can be before pubsub has a send queue for that peer: a
// message published in between is dropped for it.
const joinAnnounceDelay = 50 * time.Millisecond

// DefaultMeshDegree is the default of Config.MeshDegree. Measured with
// make bench-scale (docs/benchmarks.md): at 40 nodes, each node received
// 5.3x a burst's stored bytes with gossipsub's default mesh (6, up to 12)
// and flood publishing, 1.8x with a mesh of 3 (up to 4); the anti-entropy
// sync makes up for what a thinner mesh loses.
const DefaultMeshDegree = 3

// gossipParams returns gossipsub's parameters for a mesh of degree d: it
// keeps between d-1 and d+1 mesh peers (a mesh above d+1 is pruned at the
// next heartbeat: each mesh peer is a copy of every announce), and gossips
// message IDs to d others.
func gossipParams(d int) pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.D, p.Dlo, p.Dhi = d, max(d-1, 1), d+1
	p.Dlazy = d
	p.Dscore = min(p.Dscore, p.Dlo)
	p.Dout = max(min(p.Dlo-1, d/2-1), 0) // gossipsub wants Dout < Dlo and Dout < D/2
	return p
}

// DefaultMaxPeers is the default of Config.MaxPeers.
const DefaultMaxPeers = 64

// lowPeers is the connection manager's low watermark for max peers.
func lowPeers(maxPeers int) int { return max(maxPeers*3/4, 1) }

// Gossip that the validator accepted waits in a queue of gossipQueue
// announces (at most gossipQueueBytes of them) for readGossip, which takes
// up to maxGossipBatch of them at a time and stores their fresh events
// together: with sync durability one fsync then covers a batch of
// announces, not each one, and storing keeps up with 1k announces a
// second instead of falling behind until pubsub drops them (and the
// events they carry must be pulled). When the queue is full, pubsub's own
// buffer fills and it drops announces for this node.
const (
	gossipQueue      = 1024
	gossipQueueBytes = 16 << 20
	maxGossipBatch   = 256
)
