package p2p

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
	"github.com/edgelog/edgelog/replicate"
)

// announceLoop publishes the news of the node's own streams, with their
// fresh events, as the pacer allows: changes within a gap are coalesced
// into one announce, which carries the heads of the own streams that moved
// (deltas). What a node relays, and everything a peer that connects needs,
// travels by sync (SyncProtocol) between neighbours, so a swarm's idle
// gossip is nothing and each event's announce is the only message that
// reaches every node.
//
// While a node of an older version is connected (legacyPeers, checked at
// every heartbeat and when a peer joins), announces carry every head
// held, own and relayed, on every heartbeat, on a join and on relayed
// changes at the relay pace: what those nodes learn heads from.
func (s *Service) announceLoop(ctx context.Context) {
	defer s.wg.Done()
	hb := time.NewTicker(s.cfg.Heartbeat)
	defer hb.Stop()
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	defer gap.Stop()
	cursor := replicate.NewFreshCursor(s.cfg.FreshRepeat, s.cfg.Heartbeat)
	pace := replicate.NewPacer(s.self.String(), s.cfg.MinAnnounceGap, s.cfg.RelayAnnounceGap)
	// pending: something may be due (a change, a heartbeat, a peer that
	// joined, or the start); urgent: one that does not wait for the relay
	// pace (all but a change).
	pending, urgent := true, true
	changed := s.cfg.Store.Changed() // before Heads, to miss no change
	for {
		var due <-chan time.Time
		if pending {
			full := s.legacy.Load()
			heads, err := s.cfg.Store.Heads(ctx)
			switch {
			case err != nil:
			case !full && !pace.OwnChanged(heads):
				pending, urgent = false, false // nothing for the swarm
			default:
				if wait := time.Until(pace.Due(heads, urgent && full)); wait > 0 {
					gap.Reset(wait)
					due = gap.C
				} else {
					// The gap counts from the announce's start: from its
					// end, announces of events published every
					// MinAnnounceGap would fall behind them, and each
					// event would wait.
					start := time.Now()
					var n int
					n, err = s.announce(ctx, cursor, heads, pace, full)
					pace.Sent(start, heads, n)
					pending, urgent = false, false
				}
			}
			if err != nil {
				pending = false // tried again at the next change or heartbeat
				if ctx.Err() == nil {
					s.log.Warn("announce", slog.Any("err", err))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-due: // decide again: the announce is due now
		case <-changed: // decide again on the new heads
			changed = s.cfg.Store.Changed()
			pending = true
		case <-s.joined:
			s.legacy.Store(s.legacyPeers())
			pending, urgent = true, true
		case <-hb.C:
			s.legacy.Store(s.legacyPeers())
			pending, urgent = true, true
		}
		gap.Stop()
	}
}

// watchJoins wakes announceLoop shortly after a peer joins the topic: it
// checks whether the peer is of an older version, and if one is
// connected, announces every head at once rather than at the next
// heartbeat (peers of this version learn them by sync on connecting).
func (s *Service) watchJoins(ctx context.Context, h *pubsub.TopicEventHandler) {
	defer s.wg.Done()
	defer h.Cancel()
	wake := func() {
		select {
		case s.joined <- struct{}{}:
		default: // an announce is already due
		}
	}
	for {
		ev, err := h.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			time.AfterFunc(joinAnnounceDelay, wake)
		}
	}
}

// announce publishes the heads of the own streams that moved since the
// last announce (all heads held, in stream order, if full), with the
// fresh events of own streams since the cursor, and returns the message's
// size without the fresh events.
func (s *Service) announce(ctx context.Context, cursor *replicate.FreshCursor, heads map[event.StreamID]chain.SignedHead, pace *replicate.Pacer, full bool) (int, error) {
	var err error
	a := replicate.Announce{Node: s.self.String()}
	for _, st := range slices.Sorted(maps.Keys(heads)) {
		h := heads[st]
		if len(a.Heads) == s.cfg.Limits.MaxHeads {
			break
		}
		if len(h.Sig) == 0 {
			continue // a floor head of an expired stream (expiry.go)
		}
		if !full && (st.Node() != a.Node || pace.Carried(st, h.Offset)) {
			continue
		}
		a.Heads = append(a.Heads, h)
	}
	a.Expiry = s.expiryToAnnounce(a.Heads, full)
	if s.cfg.FreshBytes > 0 {
		// The fresh events, heads and framing must fit one message.
		budget := min(s.cfg.FreshBytes, s.cfg.Limits.MaxAnnounceBytes-len(a.Heads)*256-1024)
		if a.Fresh, err = replicate.CollectFresh(ctx, s.cfg.Store, a.Node, a.Heads, cursor, time.Now(), s.cfg.Limits.MaxFreshEvents, budget); err != nil {
			s.log.Debug("announce without fresh events", slog.Any("err", err))
			a.Fresh = nil
		}
	}
	b, err := replicate.EncodeAnnounce(a, s.cfg.Limits)
	if err != nil && a.Fresh != nil {
		a.Fresh = nil
		b, err = replicate.EncodeAnnounce(a, s.cfg.Limits)
	}
	if err != nil {
		return 0, err
	}
	overhead := len(b)
	for _, f := range a.Fresh {
		for i := range f.Events {
			overhead -= chain.EventSize(&f.Events[i])
		}
	}
	if err := s.topic.Publish(ctx, b); err != nil {
		return 0, err
	}
	s.stats.announces.Add(1)
	return max(overhead, 0), nil
}

// readGossip takes the announces the validator accepted, stores their
// fresh events and feeds their heads to the planner.
func (s *Service) readGossip(ctx context.Context, sub *pubsub.Subscription) {
	defer s.wg.Done()
	q := newAnnounceQueue(gossipQueue, gossipQueueBytes)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer q.close()
		defer sub.Cancel()
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if _, ok := msg.ValidatorData.(*validAnnounce); !ok || msg.GetFrom() == s.self {
				continue
			}
			if q.put(ctx, msg) != nil {
				return
			}
		}
	}()
	var batch []*pubsub.Message
	for {
		var size int64
		var ok bool
		if batch, size, ok = q.take(batch[:0], maxGossipBatch); !ok {
			return
		}
		s.takeGossip(ctx, batch)
		q.done(size)
		clear(batch)
	}
}

// takeGossip stores the fresh events of a batch of accepted announces and
// feeds their heads to the planner.
func (s *Service) takeGossip(ctx context.Context, batch []*pubsub.Message) {
	as := make([]*validAnnounce, len(batch))
	for i, msg := range batch {
		as[i] = msg.ValidatorData.(*validAnnounce)
	}
	stored, forged, err := s.ingestFresh(ctx, as)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("storing fresh events", slog.Any("err", err))
	}
	type news struct {
		from   peer.ID
		direct bool
		heads  []chain.Head
		floors []expiry.StreamExpiry
	}
	all := make([]news, len(batch))
	for i, msg := range batch {
		from, a := msg.GetFrom(), &as[i].a
		if err := forged[i]; err != nil {
			s.offences.add(msg.ReceivedFrom)
			s.log.Warn("rejected fresh events", slog.String("peer", from.String()), slog.Any("err", err))
			s.send(ctx, func(pl *replicate.Planner) { pl.Penalise(replicate.PeerID(from), err) })
		}
		heads := make([]chain.Head, len(a.Heads))
		for j, h := range a.Heads {
			heads[j] = h.Head
		}
		// Pull only from the authors we are connected to: pulls to an
		// author whose announce gossip relayed from afar fail and put it
		// in backoff. The relays between us announce what they hold
		// themselves.
		direct := s.host.Network().Connectedness(from) == network.Connected
		all[i] = news{from: from, direct: direct, heads: heads, floors: a.Expiry}
		s.learnRetention(from, a.Expiry)
	}
	s.send(ctx, func(pl *replicate.Planner) {
		for st, off := range stored {
			pl.Stored(st, off)
		}
		for _, n := range all {
			if n.direct {
				pl.PeerAnnounced(replicate.PeerID(n.from), n.heads)
				pl.PeerFloors(replicate.PeerID(n.from), n.floors)
			} else {
				// Events exist that the fresh ones did not bring: the sync
				// loop asks the neighbours who holds them (Rumours).
				pl.Heard(n.heads)
			}
		}
	})
}
