package p2p

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"

	"github.com/edgelog/edgelog/replicate"
)

// Peer management: the peers loop owns the peer book and the redial
// schedule. Connections, disconnections, mDNS finds and dial results come
// in as functions on s.peerOps; it dials the peers that fall due (bootstrap
// and book peers, and those mDNS found), at most maxConcurrentDials at a
// time, and saves the book when it changed.

const (
	maxConcurrentDials = 8
	// forgetAfter failed dials, a peer that is neither in the book nor a
	// bootstrap peer (one mDNS found, say) stops being redialled until it
	// is found again.
	forgetAfter = 5
	// bookAddrTTL is how long addresses from the book or mDNS stay in the
	// peerstore for dialling.
	bookAddrTTL = 24 * time.Hour
	// DefaultBookSaveInterval is how often a changed peer book is written.
	DefaultBookSaveInterval = 10 * time.Second
)

// PeerStatus is what a node knows about one peer.
type PeerStatus struct {
	// ID is the peer's NodeID.
	ID peer.ID
	// Addrs are the addresses it is reached at (connected) or was last
	// seen at.
	Addrs []multiaddr.Multiaddr
	// Connected is true while a connection is open.
	Connected bool
	// Bootstrap marks a configured bootstrap peer.
	Bootstrap bool
	// LastSeen is when it was last connected (zero: not since start and
	// not in the peer book).
	LastSeen time.Time
	// Announced is true once the peer's announce was received (since it
	// last connected); Lag and Behind are meaningful only then.
	Announced bool
	// Lag counts the events the peer announced that this node does not
	// hold yet: over every stream, its announced offset minus ours, where
	// it is ahead. Zero means we hold everything it offers.
	Lag uint64
	// Behind counts the events this node holds that the peer's latest
	// announce lacks: over every stream, our offset minus its announced
	// one, where we are ahead. Zero means it holds everything we do.
	Behind uint64
	// Score is the peer's gossipsub score (negative after invalid
	// announces).
	Score float64
	// FailedDials counts the redials that failed since it was last
	// connected.
	FailedDials int
}

// Stats are counters of a Service since it started.
type Stats struct {
	// Pulls is the number of pulls started.
	Pulls uint64
	// FreshEvents is the number of events stored from gossip, without a
	// pull.
	FreshEvents uint64
	// RejectedAnnounces is the number of announces the gossip validator
	// rejected.
	RejectedAnnounces uint64
	// Announces is the number of announces published.
	Announces uint64
	// Syncs is the number of syncs run (started or answered), and
	// SyncBytes the bytes of their messages.
	Syncs, SyncBytes uint64
}

type stats struct {
	pulls, fresh, rejected, announces, syncs, syncBytes atomic.Uint64
}

// Stats returns the service's counters.
func (s *Service) Stats() Stats {
	return Stats{Pulls: s.stats.pulls.Load(), FreshEvents: s.stats.fresh.Load(), RejectedAnnounces: s.stats.rejected.Load(), Announces: s.stats.announces.Load(), Syncs: s.stats.syncs.Load(), SyncBytes: s.stats.syncBytes.Load()}
}

// peerMgr is the state of the peers loop.
type peerMgr struct {
	book      *PeerBook
	redials   *replicate.Redials
	bootstrap map[peer.ID]bool
	dirty     bool
	rnd       *rand.Rand
}

// peerOp runs f on the peers loop; it reports false if ctx ended or the
// service stopped first.
func (s *Service) peerOp(ctx context.Context, f func(*peerMgr)) bool {
	select {
	case s.peerOps <- f:
		return true
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return false
}

var errClosed = errors.New("replicate: service closed")

// initPeers loads the peer book and prepares the peer manager with the
// bootstrap and book peers as redial targets, due now.
func (s *Service) initPeers(now time.Time) *peerMgr {
	m := &peerMgr{
		redials:   replicate.NewRedials(s.cfg.Redial),
		bootstrap: map[peer.ID]bool{},
		rnd:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	m.book = NewPeerBook(s.cfg.PeerBookSize)
	if s.cfg.PeerBookPath != "" {
		b, err := LoadPeerBook(s.cfg.PeerBookPath, s.cfg.PeerBookSize)
		if err != nil {
			s.log.Warn("peer book unusable, starting with an empty one", slog.String("path", s.cfg.PeerBookPath), slog.Any("err", err))
		}
		m.book = b
	}
	ps := s.host.Peerstore()
	for _, e := range m.book.Entries() {
		if e.ID == s.self {
			m.book.Remove(e.ID)
			continue
		}
		ps.AddAddrs(e.ID, e.Addrs, bookAddrTTL)
		m.redials.Want(replicate.PeerID(e.ID), now)
	}
	for _, ai := range s.cfg.Bootstrap {
		if ai.ID == s.self {
			continue
		}
		m.bootstrap[ai.ID] = true
		ps.AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		m.redials.Want(replicate.PeerID(ai.ID), now)
	}
	if m.book.Len() > 0 {
		s.log.Info("redialling known peers", slog.Int("peers", m.book.Len()))
	}
	return m
}

// watchConns feeds connection changes to the peers loop.
func (s *Service) watchConns(ctx context.Context) {
	s.host.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(n network.Network, c network.Conn) {
			p := c.RemotePeer()
			s.peerOp(ctx, func(m *peerMgr) { s.peerConnected(m, p) })
		},
		DisconnectedF: func(n network.Network, c network.Conn) {
			p := c.RemotePeer()
			if n.Connectedness(p) == network.Connected {
				return
			}
			s.peerOp(ctx, func(m *peerMgr) {
				if s.host.Network().Connectedness(p) != network.Connected {
					m.redials.Disconnected(replicate.PeerID(p), time.Now(), m.rnd.Float64())
					s.log.Info("peer disconnected", slog.String("peer", p.String()))
				}
			})
		},
	})
}

func (s *Service) peerConnected(m *peerMgr, p peer.ID) {
	if s.host.Network().Connectedness(p) != network.Connected {
		return // gone again before we got here
	}
	now := time.Now()
	m.redials.Want(replicate.PeerID(p), now)
	m.redials.Connected(replicate.PeerID(p))
	if m.book.Seen(p, s.host.Peerstore().Addrs(p), now) {
		m.dirty = true
	}
	s.syncSoon(p)
	s.log.Debug("peer connected", slog.String("peer", p.String()))
}

// peerFound handles a peer mDNS found.
func (s *Service) peerFound(ctx context.Context, ai peer.AddrInfo) {
	if ai.ID == s.self || ai.ID == "" {
		return
	}
	s.peerOp(ctx, func(m *peerMgr) {
		s.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, bookAddrTTL)
		m.redials.Want(replicate.PeerID(ai.ID), time.Now())
	})
}

// peersLoop owns the peer manager until ctx ends, then saves the book.
func (s *Service) peersLoop(ctx context.Context, m *peerMgr) {
	defer s.wg.Done()
	save := func() {
		if !m.dirty || s.cfg.PeerBookPath == "" {
			return
		}
		for _, p := range s.host.Network().Peers() {
			if _, ok := m.book.Get(p); ok {
				m.book.Seen(p, s.host.Peerstore().Addrs(p), time.Now())
			}
		}
		if err := m.book.Save(s.cfg.PeerBookPath); err != nil {
			s.log.Warn("saving the peer book", slog.Any("err", err))
			return
		}
		m.dirty = false
	}
	saveTick := time.NewTicker(s.cfg.BookSaveInterval)
	defer saveTick.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			save()
			return
		case f := <-s.peerOps:
			f(m)
		case <-timer.C:
		case <-saveTick.C:
			save()
		}
		now := time.Now()
		// Dial only below the connection manager's low watermark: above
		// it, the peers it closed would be dialled again at once.
		full := len(s.host.Network().Peers()) >= lowPeers(s.cfg.MaxPeers)
		if !full {
			for _, id := range m.redials.Due(now, maxConcurrentDials) {
				go s.redial(ctx, peer.ID(id))
			}
		}
		timer.Stop()
		if next, ok := m.redials.Next(); ok {
			wait := max(next.Sub(now), time.Millisecond)
			if full {
				wait = max(wait, time.Second) // look again when peers may have gone
			}
			timer.Reset(wait)
		}
	}
}

// redial dials id once and reports the result to the peers loop.
//
// It first clears the swarm's dial backoff of id. The swarm holds back
// an address for 5 s after its first failed dial, growing quadratically to
// 5 min, and answers dials in that time with an error. The redial schedule
// already spaces the dials; on top of it, a peer that came back after an
// outage of a few minutes waited up to 5 min to be redialled.
func (s *Service) redial(ctx context.Context, id peer.ID) {
	if sw, ok := s.host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		sw.Backoff().Clear(id)
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	err := s.host.Connect(dctx, peer.AddrInfo{ID: id})
	cancel()
	if ctx.Err() != nil {
		return
	}
	s.peerOp(ctx, func(m *peerMgr) { s.dialDone(ctx, m, id, err, time.Now()) })
}

// errDroppedAfterDial stands for a dial that connected, but whose
// connection closed before its result reached the peers loop.
var errDroppedAfterDial = errors.New("connection closed right after the dial")

// dialDone records the end of a redial of id that ended with err. Only a
// peer connected now counts as a success: a dial that succeeded but whose
// connection dropped since (the drop was recorded first, as the ops run in
// order) is a failure. Counting it as a success marked the peer connected
// for good, and it was never redialled.
func (s *Service) dialDone(ctx context.Context, m *peerMgr, id peer.ID, err error, now time.Time) {
	ok := s.host.Network().Connectedness(id) == network.Connected
	m.redials.DialDone(replicate.PeerID(id), ok, now, m.rnd.Float64())
	if ok {
		s.peerConnected(m, id)
		return
	}
	if err == nil {
		err = errDroppedAfterDial
	}
	_, inBook := m.book.Get(id)
	n := m.redials.Attempts(replicate.PeerID(id))
	if !inBook && !m.bootstrap[id] && n >= forgetAfter {
		m.redials.Forget(replicate.PeerID(id))
	}
	lvl := slog.LevelDebug
	if m.bootstrap[id] && n == 1 {
		lvl = slog.LevelWarn
	}
	s.log.Log(ctx, lvl, "peer unreachable", slog.String("peer", id.String()), slog.Int("attempts", n), slog.Any("err", err))
}

// Peers returns what the node knows about its peers: those connected,
// those in the peer book, and the bootstrap peers, connected first, then by
// NodeID.
func (s *Service) Peers(ctx context.Context) ([]PeerStatus, error) {
	reply := make(chan []PeerStatus, 1)
	ok := s.peerOp(ctx, func(m *peerMgr) {
		byID := map[peer.ID]*PeerStatus{}
		get := func(id peer.ID) *PeerStatus {
			if byID[id] == nil {
				byID[id] = &PeerStatus{ID: id}
			}
			return byID[id]
		}
		for _, e := range m.book.Entries() {
			st := get(e.ID)
			st.Addrs, st.LastSeen = e.Addrs, e.LastSeen
		}
		for id := range m.bootstrap {
			get(id).Bootstrap = true
		}
		for _, id := range s.host.Network().Peers() {
			st := get(id)
			st.Connected = true
			if addrs := s.host.Peerstore().Addrs(id); len(addrs) > 0 {
				st.Addrs = bookAddrs(addrs)
			}
		}
		out := make([]PeerStatus, 0, len(byID))
		for id, st := range byID {
			if len(st.Addrs) == 0 {
				st.Addrs = bookAddrs(s.host.Peerstore().Addrs(id))
			}
			st.FailedDials = m.redials.Attempts(replicate.PeerID(id))
			out = append(out, *st)
		}
		reply <- out
	})
	if !ok {
		return nil, cmp.Or(ctx.Err(), errClosed)
	}
	var out []PeerStatus
	select {
	case out = <-reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, errClosed
	}
	lags := make(chan map[peer.ID]PeerStatus, 1)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	s.send(lctx, func(pl *replicate.Planner) {
		m := map[peer.ID]PeerStatus{}
		for _, st := range out {
			lag, behind, ok := pl.Lag(replicate.PeerID(st.ID))
			m[st.ID] = PeerStatus{Lag: lag, Behind: behind, Announced: ok}
		}
		lags <- m
	})
	select {
	case m := <-lags:
		for i := range out {
			l := m[out[i].ID]
			out[i].Lag, out[i].Behind, out[i].Announced = l.Lag, l.Behind, l.Announced
		}
	case <-lctx.Done():
		return nil, cmp.Or(ctx.Err(), errClosed)
	}
	s.scoreMu.Lock()
	for i := range out {
		out[i].Score = s.scores[out[i].ID]
	}
	s.scoreMu.Unlock()
	slices.SortFunc(out, func(a, b PeerStatus) int {
		if a.Connected != b.Connected {
			if a.Connected {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}
