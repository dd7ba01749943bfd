package p2p

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
	"github.com/edgelog/edgelog/replicate"
)

// SyncProtocol is the libp2p protocol of anti-entropy (replicate.SyncInitiate):
// how a node learns what its neighbours hold beyond the gossip of each
// origin's own streams. A peer that does not speak it is a node of an
// older version; for as long as one is connected, announces carry every
// head again, as those nodes expect (see announceLoop).
const SyncProtocol protocol.ID = "/edgelog/sync/1"

// DefaultSyncInterval is how often a node syncs with one of its
// neighbours, chosen at random, when nothing else asks for a sync.
const DefaultSyncInterval = time.Second

const (
	// rumourCheck is how often the sync loop asks the planner whether
	// gossip told of events that no neighbour is known to hold.
	rumourCheck = 100 * time.Millisecond
	// maxServedSyncs bounds the syncs answered at once.
	maxServedSyncs = 16
	// syncTimeout bounds one sync.
	syncTimeout = 30 * time.Second
	// maxSyncBackoff bounds the periodic sync's interval, in SyncIntervals.
	maxSyncBackoff = 8
)

// syncViews caches the SyncView of the store, rebuilt (from the last one,
// so only streams that moved are hashed again) when the store changed.
type syncViews struct {
	mu      sync.Mutex
	v       replicate.SyncView
	changed <-chan struct{}
}

// view returns the store's SyncView now.
func (s *Service) view(ctx context.Context) (replicate.SyncView, error) {
	c := &s.views
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed != nil {
		select {
		case <-c.changed:
		default:
			return c.v, nil
		}
	}
	changed := s.cfg.Store.Changed()
	heads, err := s.cfg.Store.Heads(ctx)
	if err != nil {
		return replicate.SyncView{}, err
	}
	xs := s.cfg.Store.Expiry()
	ex := make(map[event.StreamID]expiry.StreamExpiry, len(xs))
	for _, x := range xs {
		ex[x.Stream] = x
	}
	c.v = replicate.SyncView{Digest: c.v.Digest.Update(heads), Heads: heads, Expiry: ex}
	c.changed = changed
	return c.v, nil
}

// syncLoop starts this node's syncs: with each peer that connects, with a
// random neighbour every SyncInterval, with neighbours in turn while gossip
// told of events none is known to hold, and again with a peer whose sync
// left part of the difference for another round.
//
// The periodic sync backs off while there is nothing to find: each one
// that finds its neighbour equal doubles the interval, up to
// maxSyncBackoff times SyncInterval; one that finds a difference, or a
// change of the store, brings it back to SyncInterval. An idle swarm then
// costs each node a few bytes every few seconds.
func (s *Service) syncLoop(ctx context.Context) {
	defer s.wg.Done()
	interval := s.cfg.SyncInterval
	periodic := time.NewTimer(interval)
	defer periodic.Stop()
	rumours := time.NewTicker(rumourCheck)
	defer rumours.Stop()
	changed := s.cfg.Store.Changed()
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	var queue []peer.ID // peers to sync with before the next random one
	next := 0           // round-robin position for rumours
	for {
		var target peer.ID
		select {
		case <-ctx.Done():
			return
		case p := <-s.syncWith:
			queue = append(queue, p)
		case <-changed:
			changed = s.cfg.Store.Changed()
			if interval > s.cfg.SyncInterval {
				interval = s.cfg.SyncInterval
				periodic.Reset(interval)
			}
			continue
		case <-periodic.C:
			if ps := s.syncPeers(); len(ps) > 0 {
				target = ps[rnd.IntN(len(ps))]
			}
			periodic.Reset(interval)
		case <-rumours.C:
			if s.rumoured(ctx) {
				if ps := s.syncPeers(); len(ps) > 0 {
					next++
					target = ps[next%len(ps)]
				}
			}
		}
		for target != "" || len(queue) > 0 {
			if target == "" {
				target, queue = queue[0], queue[1:]
			}
			if s.host.Network().Connectedness(target) == network.Connected {
				more, equal := s.initiateSync(ctx, target)
				if more && len(queue) < 64 {
					queue = append(queue, target)
				}
				if equal {
					interval = min(2*interval, maxSyncBackoff*s.cfg.SyncInterval)
				} else {
					interval = s.cfg.SyncInterval
				}
			}
			target = ""
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// rumoured asks the planner whether gossip told of events no peer is known
// to hold.
func (s *Service) rumoured(ctx context.Context) bool {
	reply := make(chan bool, 1)
	s.send(ctx, func(pl *replicate.Planner) { reply <- pl.Rumours() > 0 })
	select {
	case r := <-reply:
		return r
	case <-ctx.Done():
		return false
	}
}

// syncPeers returns the connected peers that speak SyncProtocol.
func (s *Service) syncPeers() []peer.ID {
	var out []peer.ID
	for _, p := range s.host.Network().Peers() {
		if ok, _ := s.host.Peerstore().SupportsProtocols(p, SyncProtocol); len(ok) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// legacyPeers reports whether a connected peer speaks the pull protocol but
// not SyncProtocol: a node of an older version, which learns heads from
// full announces only.
func (s *Service) legacyPeers() bool {
	for _, p := range s.host.Network().Peers() {
		if ok, _ := s.host.Peerstore().SupportsProtocols(p, SyncProtocol, PullProtocol); len(ok) == 1 && ok[0] == PullProtocol {
			return true
		}
	}
	return false
}

// syncSoon asks the sync loop to sync with p.
func (s *Service) syncSoon(p peer.ID) {
	select {
	case s.syncWith <- p:
	default: // the loop is busy; the periodic sync will come
	}
}

// initiateSync runs one sync with p and reports whether another round is
// wanted, and whether p was found to hold the same as this node.
func (s *Service) initiateSync(ctx context.Context, p peer.ID) (more, equal bool) {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	v, err := s.view(ctx)
	if err != nil {
		s.log.Debug("sync: store", slog.Any("err", err))
		return false, false
	}
	st, err := s.host.NewStream(ctx, p, SyncProtocol)
	if err != nil {
		s.log.Debug("sync: open stream", slog.String("peer", p.String()), slog.Any("err", err))
		return false, false
	}
	defer st.Close()
	res, err := replicate.SyncInitiate(ctx, st, v, s.heads.verify, s.cfg.Limits)
	s.synced(ctx, p, st, res, err)
	return err == nil && res.More, err == nil && res.Equal
}

// serveSync answers a sync a peer started.
func (s *Service) serveSync(ctx context.Context, st network.Stream) {
	defer st.Close()
	if !s.syncSlots.TryAcquire(1) {
		st.Reset()
		return
	}
	defer s.syncSlots.Release(1)
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	v, err := s.view(ctx)
	if err != nil {
		st.Reset()
		return
	}
	res, err := replicate.SyncRespond(ctx, st, v, s.heads.verify, s.cfg.Limits)
	s.synced(ctx, st.Conn().RemotePeer(), st, res, err)
}

// synced feeds what a sync with p taught to the planner, or judges its
// failure.
func (s *Service) synced(ctx context.Context, p peer.ID, st network.Stream, res replicate.SyncResult, err error) {
	s.stats.syncs.Add(1)
	s.stats.syncBytes.Add(uint64(res.Sent + res.Received))
	if err != nil {
		st.Reset()
		if replicate.Blame(err) == replicate.FaultMisbehaviour {
			s.offences.add(p)
			s.log.Warn("peer sent a sync that fails verification", slog.String("peer", p.String()), slog.Any("err", err))
			s.send(ctx, func(pl *replicate.Planner) { pl.Penalise(replicate.PeerID(p), err) })
		} else {
			s.log.Debug("sync failed", slog.String("peer", p.String()), slog.Any("err", err))
		}
		return
	}
	heads := make([]chain.Head, len(res.Heads))
	for i, h := range res.Heads {
		heads[i] = h.Head
	}
	s.learnRetention(p, res.Expiry)
	s.send(ctx, func(pl *replicate.Planner) {
		if res.Equal {
			pl.PeerEqual(replicate.PeerID(p))
		}
		pl.PeerSynced(replicate.PeerID(p), heads)
		pl.PeerFloors(replicate.PeerID(p), res.Expiry)
	})
}
