package p2p

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/semaphore"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/replicate"
)

// Gossip-layer defence. Every announce passes a topic validator before it
// is delivered or forwarded: it must decode within the limits, name its
// pubsub author as its Node, carry only heads signed by their streams'
// origins, and fresh events that verify. Anything else is rejected, which
// gossipsub's peer scoring (P4, invalid messages) charges to the peer that
// sent it; a peer whose score falls below the thresholds is no longer
// gossiped with, then ignored altogether.

// scoreParams returns the gossipsub peer-score parameters for topic. One
// invalid announce costs -150 (the counter is squared), which takes the
// sender below the gossip and publish thresholds (no more gossip or
// announces go to it); a second one (-600) graylists it (what it sends is
// ignored). The penalty decays to nothing over about an hour. appScore
// adds the node's own verdicts from pulls (see offences).
func scoreParams(topic string, appScore func(peer.ID) float64) (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	params := &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		Topics: map[string]*pubsub.TopicScoreParams{topic: {
			SkipAtomicValidation:           true,
			TopicWeight:                    1,
			TimeInMeshQuantum:              time.Second, // unused (weight 0) but divided by
			InvalidMessageDeliveriesWeight: -150,
			InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
		}},
		AppSpecificScore:  appScore,
		AppSpecificWeight: 1,
		DecayInterval:     time.Second,
		DecayToZero:       0.01,
		RetainScore:       time.Hour,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		SkipAtomicValidation: true,
		GossipThreshold:      -50,
		PublishThreshold:     -100,
		GraylistThreshold:    -300,
	}
	return params, thresholds
}

// validAnnounce is what the validator hands to readGossip in
// Message.ValidatorData.
type validAnnounce struct {
	a     replicate.Announce
	fresh []replicate.CheckedFresh
}

// validate is the topic validator of announces.
func (s *Service) validate(ctx context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	author := msg.GetFrom()
	if author == s.self {
		return pubsub.ValidationAccept
	}
	v, err := s.checkAnnounce(ctx, author, msg.Data)
	if err != nil {
		if replicate.Blame(err) != replicate.FaultMisbehaviour {
			// Our own trouble (the store failed): not the sender's fault.
			s.log.Debug("announce not checked", slog.String("peer", author.String()), slog.Any("err", err))
			return pubsub.ValidationIgnore
		}
		s.stats.rejected.Add(1)
		s.log.Warn("rejected announce", slog.String("author", author.String()), slog.String("from", msg.ReceivedFrom.String()), slog.Any("err", err))
		s.send(ctx, func(pl *replicate.Planner) { pl.Penalise(replicate.PeerID(author), err) })
		return pubsub.ValidationReject
	}
	if s.cfg.validated != nil {
		s.cfg.validated(v)
	}
	msg.ValidatorData = v
	return pubsub.ValidationAccept
}

// checkAnnounce decodes and verifies an announce authored by author.
func (s *Service) checkAnnounce(ctx context.Context, author peer.ID, data []byte) (*validAnnounce, error) {
	a, err := replicate.DecodeAnnounce(data, s.cfg.Limits)
	if err != nil {
		return nil, err
	}
	if a.Node != author.String() {
		return nil, fmt.Errorf("%w: announce of %s sent by %s", chain.ErrMalformed, a.Node, author)
	}
	for _, h := range a.Heads {
		if err := s.heads.verify(h); err != nil {
			return nil, err
		}
	}
	for _, f := range a.Fresh {
		if err := s.heads.verify(f.Head); err != nil {
			return nil, err
		}
	}
	v := &validAnnounce{a: a}
	if len(a.Fresh) > 0 {
		held, err := s.cfg.Store.Heads(ctx)
		if err != nil {
			return nil, fmt.Errorf("announce: store heads: %w", err)
		}
		if v.fresh, err = replicate.CheckFresh(held, a.Fresh, s.heads.verify); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// headCache remembers the heads verified lately, so the same head,
// announced by its origin and then offered by each neighbour in a sync,
// costs one signature check, not one per message. It is keyed by the
// whole head (stream, offset, Lamport time, hash): relays at different
// offsets of one stream do not evict each other. It is safe for
// concurrent use and bounded: two generations of at most max heads each,
// the older dropped when the newer fills, so what is verified often stays.
type headCache struct {
	mu       sync.Mutex
	max      int
	cur, old map[chain.Head]string // head -> signature
}

func newHeadCache(max int) *headCache {
	return &headCache{max: max, cur: map[chain.Head]string{}, old: map[chain.Head]string{}}
}

// verify is VerifyHead, skipped for a head verified lately with the same
// signature.
func (c *headCache) verify(h chain.SignedHead) error {
	c.mu.Lock()
	sig, ok := c.cur[h.Head]
	if !ok {
		if sig, ok = c.old[h.Head]; ok && sig == string(h.Sig) {
			c.putLocked(h)
		}
	}
	c.mu.Unlock()
	if ok && sig == string(h.Sig) {
		return nil
	}
	if err := chain.VerifyHead(h); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(h)
	return nil
}

func (c *headCache) putLocked(h chain.SignedHead) {
	if len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[chain.Head]string, c.max)
	}
	c.cur[h.Head] = string(h.Sig)
}

// offences remembers, per peer, when it sent data that failed verification
// in a pull (or in gossip after the validator passed it), and turns that
// into the application-specific part of its gossip score, so misbehaviour
// seen outside gossip also costs gossip standing. Each offence counts for
// an hour; the penalty is -150 per offence, squared like gossipsub's own
// invalid-message penalty. Safe for concurrent use and bounded.
type offences struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[peer.ID][]time.Time
}

const (
	offenceTTL       = time.Hour
	maxOffencesPeer  = 8
	maxOffencePeers  = 1024
	offenceScoreUnit = -150
)

func newOffences(now func() time.Time) *offences {
	return &offences{now: now, m: map[peer.ID][]time.Time{}}
}

// add records an offence of p now.
func (o *offences) add(p peer.ID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.m[p]; !ok && len(o.m) >= maxOffencePeers {
		o.pruneLocked(o.now())
		if len(o.m) >= maxOffencePeers {
			return // flooded: the peers already recorded keep their penalty
		}
	}
	ts := append(o.m[p], o.now())
	if len(ts) > maxOffencesPeer {
		ts = ts[len(ts)-maxOffencesPeer:]
	}
	o.m[p] = ts
}

func (o *offences) pruneLocked(now time.Time) {
	for p, ts := range o.m {
		i := 0
		for i < len(ts) && now.Sub(ts[i]) >= offenceTTL {
			i++
		}
		if i == len(ts) {
			delete(o.m, p)
		} else if i > 0 {
			o.m[p] = ts[i:]
		}
	}
}

// score is p's application-specific gossip score: 0, or negative after
// recent offences.
func (o *offences) score(p peer.ID) float64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	now, n := o.now(), 0
	for _, t := range o.m[p] {
		if now.Sub(t) < offenceTTL {
			n++
		}
	}
	return float64(offenceScoreUnit * n * n)
}

// announceQueue holds the announces the validator accepted until
// readGossip takes them, bounded in number and in bytes. One goroutine
// puts and closes, one takes.
type announceQueue struct {
	ch   chan queuedAnnounce
	room *semaphore.Weighted
	max  int64
}

type queuedAnnounce struct {
	msg  *pubsub.Message
	size int64
}

func newAnnounceQueue(n int, bytes int64) *announceQueue {
	return &announceQueue{ch: make(chan queuedAnnounce, n), room: semaphore.NewWeighted(bytes), max: bytes}
}

// put queues msg, waiting while the queue is full; it fails only when ctx
// ends.
func (q *announceQueue) put(ctx context.Context, msg *pubsub.Message) error {
	size := min(int64(len(msg.Data)), q.max)
	if err := q.room.Acquire(ctx, size); err != nil {
		return err
	}
	select {
	case q.ch <- queuedAnnounce{msg, size}:
		return nil
	case <-ctx.Done():
		q.room.Release(size)
		return ctx.Err()
	}
}

// close ends the queue: take returns false once it is empty.
func (q *announceQueue) close() { close(q.ch) }

// take waits for an announce and appends it to dst with those queued
// after it, up to max in all. It returns their size, to pass to done once
// they are handled, or false when the queue is closed and empty.
func (q *announceQueue) take(dst []*pubsub.Message, max int) ([]*pubsub.Message, int64, bool) {
	a, ok := <-q.ch
	if !ok {
		return dst, 0, false
	}
	dst, size := append(dst, a.msg), a.size
	for len(dst) < max {
		select {
		case a, ok := <-q.ch:
			if !ok {
				return dst, size, true
			}
			dst, size = append(dst, a.msg), size+a.size
		default:
			return dst, size, true
		}
	}
	return dst, size, true
}

// done gives back the room of announces taken.
func (q *announceQueue) done(size int64) { q.room.Release(size) }
