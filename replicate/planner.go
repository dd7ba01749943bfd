package replicate

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// PlannerConfig tunes a Planner. Zero fields take the values of
// DefaultPlannerConfig.
// PeerID identifies a peer to the planner and the redial schedule. It is
// opaque here; the libp2p edge uses the bytes of libp2p peer IDs.
type PeerID string

type PlannerConfig struct {
	// MaxPulls bounds the pulls in flight overall (one per stream at most).
	MaxPulls int
	// MaxPullsPerPeer bounds the pulls in flight from one peer.
	MaxPullsPerPeer int
	// IdleTimeout cancels a pull that stored nothing for this long.
	IdleTimeout time.Duration
	// BaseBackoff is a peer's backoff after its first failure; it doubles
	// with each further failure up to MaxBackoff.
	BaseBackoff time.Duration
	// MaxBackoff caps a peer's backoff.
	MaxBackoff time.Duration
	// MisbehaviourWeight is how many failures one verification failure
	// counts for.
	MisbehaviourWeight int
	// SyncGrace is how long a stream that only a sync showed behind waits
	// before it is pulled (PeerSynced): the events may be riding along in
	// an announce still being validated.
	SyncGrace time.Duration
}

// DefaultPlannerConfig suits a small device on a LAN.
var DefaultPlannerConfig = PlannerConfig{
	MaxPulls:           8,
	MaxPullsPerPeer:    4,
	IdleTimeout:        10 * time.Second,
	BaseBackoff:        time.Second,
	MaxBackoff:         5 * time.Minute,
	MisbehaviourWeight: 4,
	SyncGrace:          250 * time.Millisecond,
}

func (c PlannerConfig) withDefaults() PlannerConfig {
	d := DefaultPlannerConfig
	if c.MaxPulls > 0 {
		d.MaxPulls = c.MaxPulls
	}
	if c.MaxPullsPerPeer > 0 {
		d.MaxPullsPerPeer = c.MaxPullsPerPeer
	}
	if c.IdleTimeout > 0 {
		d.IdleTimeout = c.IdleTimeout
	}
	if c.BaseBackoff > 0 {
		d.BaseBackoff = c.BaseBackoff
	}
	if c.MaxBackoff > 0 {
		d.MaxBackoff = c.MaxBackoff
	}
	if c.MisbehaviourWeight > 0 {
		d.MisbehaviourWeight = c.MisbehaviourWeight
	}
	if c.SyncGrace > 0 {
		d.SyncGrace = c.SyncGrace
	}
	return d
}

// Pull is a transfer the Planner wants: ask Peer for Stream's events in
// (From, To].
type Pull struct {
	ID     uint64 // unique per Planner; PullDone names it
	Peer   PeerID
	Stream event.StreamID
	From   int64
	To     uint64
}

// Ready is the Planner's output: pulls to start and pulls to abandon.
type Ready struct {
	// Start are new pulls; they count as in flight from now on. The caller
	// reports each one's end with PullDone.
	Start []Pull
	// Cancel are pulls that timed out. The Planner has already counted
	// them as failed and freed their slots; the caller should stop them. A
	// later PullDone for them is ignored.
	Cancel []Pull
}

// Planner decides which ranges of which streams to pull from which peers.
// It is pure: it does no I/O, reads no clock and starts nothing; the caller
// feeds it what happened and acts on Next. Time comes in through Tick. A
// Planner is not safe for concurrent use: one goroutine owns it.
type Planner struct {
	cfg    PlannerConfig
	now    time.Time
	nextID uint64

	have      map[event.StreamID]int64             // present offset here
	announced map[PeerID]map[event.StreamID]uint64 // what each peer is known to hold
	holders   map[event.StreamID]map[PeerID]uint64 // announced, by stream
	best      map[event.StreamID]uint64            // highest offset any peer holds
	wanted    map[event.StreamID]struct{}          // best above have
	inflight  map[event.StreamID]*flight
	perPeer   map[PeerID]int
	peers     map[PeerID]*peerState
	floors    map[PeerID]map[event.StreamID]uint64 // announced floors (expiry.go)
	rumours   map[event.StreamID]rumour            // heard of, no holder known
	notBefore map[event.StreamID]time.Time         // no pull before then (SyncGrace)
}

type rumour struct {
	off uint64
	at  time.Time
}

// Rumours are bounded in number and age: a stream heard of that no
// neighbour turns out to hold within rumourTTL is given up (its events
// may have expired everywhere).
const (
	maxRumours = 4096
	rumourTTL  = 30 * time.Second
)

type flight struct {
	Pull
	progress time.Time // start or last Stored
}

type peerState struct {
	failures int
	until    time.Time // in backoff until then
}

// NewPlanner returns a Planner that knows nothing yet; feed it Stored for
// what the store holds and Tick with the current time.
func NewPlanner(cfg PlannerConfig) *Planner {
	return &Planner{
		cfg:       cfg.withDefaults(),
		have:      map[event.StreamID]int64{},
		announced: map[PeerID]map[event.StreamID]uint64{},
		holders:   map[event.StreamID]map[PeerID]uint64{},
		best:      map[event.StreamID]uint64{},
		wanted:    map[event.StreamID]struct{}{},
		rumours:   map[event.StreamID]rumour{},
		notBefore: map[event.StreamID]time.Time{},
		inflight:  map[event.StreamID]*flight{},
		perPeer:   map[PeerID]int{},
		peers:     map[PeerID]*peerState{},
	}
}

// Tick sets the current time. Time never goes back: an earlier now is
// ignored.
func (p *Planner) Tick(now time.Time) {
	if now.After(p.now) {
		p.now = now
	}
}

// PeerAnnounced records heads a peer can serve (from its announce, or a
// sync with it): what it is known to hold rises to them, and never falls
// while it stays connected (a peer loses events only to expiry, which its
// floors tell). The caller has verified the heads' signatures.
func (p *Planner) PeerAnnounced(id PeerID, heads []chain.Head) {
	m := p.announced[id]
	if m == nil {
		m = make(map[event.StreamID]uint64, len(heads))
		p.announced[id] = m
	}
	for _, h := range heads {
		if h.Offset > math.MaxInt64 {
			continue // cannot exist; offsets are int64 on the wire of pulls
		}
		if cur, ok := m[h.Stream]; !ok || h.Offset > cur {
			m[h.Stream] = h.Offset
			p.setHolder(h.Stream, id, h.Offset)
		}
	}
}

// PeerSynced is PeerAnnounced for heads a sync with the peer showed. A
// stream they make wanted is not pulled for SyncGrace: a sync overtakes
// the announce whose fresh events are still being validated, and pulling
// then would fetch what is on its way.
func (p *Planner) PeerSynced(id PeerID, heads []chain.Head) {
	for _, h := range heads {
		if _, wanted := p.wanted[h.Stream]; !wanted && int64(h.Offset) > p.haveOf(h.Stream) {
			p.notBefore[h.Stream] = p.now.Add(p.cfg.SyncGrace)
		}
	}
	p.PeerAnnounced(id, heads)
}

// PeerEqual records that a peer holds exactly what is held here (a sync
// found their digests equal).
func (p *Planner) PeerEqual(id PeerID) {
	m := p.announced[id]
	if m == nil {
		m = make(map[event.StreamID]uint64, len(p.have))
		p.announced[id] = m
	}
	for s, off := range p.have {
		if off < 0 {
			continue
		}
		if cur, ok := m[s]; !ok || uint64(off) != cur {
			m[s] = uint64(off)
			p.setHolder(s, id, uint64(off))
		}
	}
}

// Heard records heads that gossip relayed from nodes not connected here:
// their events exist, but no neighbour may hold them yet. Heads held here,
// or held by a known peer, are no news.
func (p *Planner) Heard(heads []chain.Head) {
	for _, h := range heads {
		if int64(h.Offset) <= p.haveOf(h.Stream) || p.holds(h.Stream, h.Offset) {
			continue
		}
		r, ok := p.rumours[h.Stream]
		if !ok && len(p.rumours) >= maxRumours {
			continue
		}
		if !ok || h.Offset > r.off {
			p.rumours[h.Stream] = rumour{off: h.Offset, at: p.now}
		}
	}
}

// Rumours returns how many streams were heard of (Heard) beyond what is
// held here and what any peer is known to hold: the caller syncs with its
// neighbours to find holders.
func (p *Planner) Rumours() int {
	for s, r := range p.rumours {
		if int64(r.off) <= p.haveOf(s) || p.holds(s, r.off) || p.now.Sub(r.at) >= rumourTTL {
			delete(p.rumours, s)
		}
	}
	return len(p.rumours)
}

func (p *Planner) holds(s event.StreamID, off uint64) bool {
	b, ok := p.best[s]
	return ok && b >= off
}

func (p *Planner) setHolder(s event.StreamID, id PeerID, off uint64) {
	hs := p.holders[s]
	if hs == nil {
		hs = map[PeerID]uint64{}
		p.holders[s] = hs
	}
	hs[id] = off
	if cur, ok := p.best[s]; !ok || off > cur {
		p.best[s] = off
	}
	p.want(s)
}

// want updates whether s is wanted: some peer holds more of it.
func (p *Planner) want(s event.StreamID) {
	if b, ok := p.best[s]; ok && int64(b) > p.haveOf(s) {
		p.wanted[s] = struct{}{}
	} else {
		delete(p.wanted, s)
		delete(p.notBefore, s)
	}
}

// PeerGone forgets what a peer announced; its pulls in flight are
// cancelled by the next Next. Its backoff state is kept.
func (p *Planner) PeerGone(id PeerID) {
	for s := range p.announced[id] {
		hs := p.holders[s]
		delete(hs, id)
		if len(hs) == 0 {
			delete(p.holders, s)
			delete(p.best, s)
		} else {
			var b uint64
			for _, off := range hs {
				b = max(b, off)
			}
			p.best[s] = b
		}
		p.want(s)
	}
	delete(p.announced, id)
	delete(p.floors, id)
}

// Stored records that the store now holds stream up to offset (by a pull,
// gossip or a local publish). It counts as progress of a pull of stream.
func (p *Planner) Stored(stream event.StreamID, offset uint64) {
	if cur, ok := p.have[stream]; !ok || int64(offset) > cur {
		p.have[stream] = int64(offset)
		p.want(stream)
	}
	if f := p.inflight[stream]; f != nil {
		f.progress = p.now
	}
}

// PullDone records the end of pull id with its error (nil for success). A
// pull that ended without an error but short of its range counts as a
// transient failure of the peer; Blame grades the other errors.
func (p *Planner) PullDone(id uint64, err error) {
	var f *flight
	for _, x := range p.inflight {
		if x.ID == id {
			f = x
			break
		}
	}
	if f == nil {
		return // cancelled before, or unknown
	}
	p.finish(f)
	fault := Blame(err)
	if err == nil && p.haveOf(f.Stream) < int64(f.To) {
		fault = FaultTransient
	}
	p.judge(f.Peer, fault)
}

func (p *Planner) finish(f *flight) {
	delete(p.inflight, f.Stream)
	if p.perPeer[f.Peer]--; p.perPeer[f.Peer] <= 0 {
		delete(p.perPeer, f.Peer)
	}
}

// judge updates a peer's failure count and backoff after a pull.
func (p *Planner) judge(id PeerID, fault Fault) {
	ps := p.peers[id]
	switch fault {
	case FaultNone:
		if ps != nil && !p.now.Before(ps.until) {
			delete(p.peers, id)
		}
		return
	case FaultTransient:
		if ps == nil {
			ps = &peerState{}
			p.peers[id] = ps
		}
		ps.failures++
	case FaultMisbehaviour:
		if ps == nil {
			ps = &peerState{}
			p.peers[id] = ps
		}
		ps.failures += p.cfg.MisbehaviourWeight
	}
	d := p.cfg.BaseBackoff
	for i := 1; i < ps.failures && d < p.cfg.MaxBackoff; i++ {
		d *= 2
	}
	ps.until = p.now.Add(min(d, p.cfg.MaxBackoff))
}

// Penalise records misbehaviour of a peer seen outside a pull (for example
// a forged gossip message).
func (p *Planner) Penalise(id PeerID, err error) { p.judge(id, Blame(err)) }

// InBackoff reports whether a peer is in backoff now, and until when.
func (p *Planner) InBackoff(id PeerID) (bool, time.Time) {
	ps := p.peers[id]
	if ps == nil || !p.now.Before(ps.until) {
		return false, time.Time{}
	}
	return true, ps.until
}

func (p *Planner) haveOf(s event.StreamID) int64 {
	if h, ok := p.have[s]; ok {
		return h
	}
	return -1
}

// Next returns the pulls to start and to cancel now. Timed-out pulls and
// pulls from peers that are gone are cancelled; then, stream by stream (in
// stream order), every stream some peer announced above what is held here
// and that has no pull in flight gets one, from the candidate peer not in
// backoff with the highest announced offset (ties: fewer failures, fewer
// pulls in flight, lower peer ID), within MaxPulls and MaxPullsPerPeer.
// Peers in backoff are not asked until their backoff ends.
func (p *Planner) Next() Ready {
	var rd Ready
	for _, s := range sortedKeys(p.inflight) {
		f := p.inflight[s]
		_, online := p.announced[f.Peer]
		timedOut := p.now.Sub(f.progress) >= p.cfg.IdleTimeout
		if p.haveOf(s) >= int64(f.To) {
			continue // done, PullDone is on its way
		}
		if !online || timedOut {
			p.finish(f)
			if timedOut {
				p.judge(f.Peer, FaultTransient)
			}
			rd.Cancel = append(rd.Cancel, f.Pull)
		}
	}
	if len(p.inflight) >= p.cfg.MaxPulls {
		return rd
	}
	type cand struct {
		id  PeerID
		off uint64
	}
	for _, s := range p.wantedStreams() {
		if len(p.inflight) >= p.cfg.MaxPulls {
			break
		}
		if p.inflight[s] != nil || p.now.Before(p.notBefore[s]) {
			continue
		}
		have := p.haveOf(s)
		var cands []cand
		for id, off := range p.holders[s] {
			if int64(off) <= have || p.perPeer[id] >= p.cfg.MaxPullsPerPeer {
				continue
			}
			if busy, _ := p.InBackoff(id); busy {
				continue
			}
			cands = append(cands, cand{id, off})
		}
		if len(cands) == 0 {
			continue
		}
		best := slices.MinFunc(cands, func(a, b cand) int {
			if c := cmp.Compare(b.off, a.off); c != 0 {
				return c
			}
			if c := cmp.Compare(p.failures(a.id), p.failures(b.id)); c != 0 {
				return c
			}
			if c := cmp.Compare(p.perPeer[a.id], p.perPeer[b.id]); c != 0 {
				return c
			}
			return cmp.Compare(a.id, b.id)
		})
		p.nextID++
		// Never below the peer's floor: it answers from there anyway.
		from := max(have, int64(p.floorOf(best.id, s))-1)
		f := &flight{Pull: Pull{ID: p.nextID, Peer: best.id, Stream: s, From: from, To: best.off}, progress: p.now}
		p.inflight[s] = f
		p.perPeer[best.id]++
		rd.Start = append(rd.Start, f.Pull)
	}
	return rd
}

func (p *Planner) failures(id PeerID) int {
	if ps := p.peers[id]; ps != nil {
		return ps.failures
	}
	return 0
}

// wanted returns, in order, the streams some peer announced above what is
// held here.
func (p *Planner) wantedStreams() []event.StreamID {
	out := make([]event.StreamID, 0, len(p.wanted))
	for s := range p.wanted {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// ToReplicate returns, per stream, how many events peers announced beyond
// what is held here (the toReplicate of node info). The map is the caller's.
func (p *Planner) ToReplicate() map[event.StreamID]uint64 {
	out := map[event.StreamID]uint64{}
	for s := range p.wanted {
		off := p.best[s]
		// Events below every holder's floor expired: not to replicate.
		if have := max(p.haveOf(s), int64(p.lowestFloor(s))-1); int64(off) > have {
			out[s] = uint64(int64(off) - have)
		}
	}
	return out
}

// InFlight returns the pulls in flight, in stream order.
func (p *Planner) InFlight() []Pull {
	out := make([]Pull, 0, len(p.inflight))
	for _, s := range sortedKeys(p.inflight) {
		out = append(out, p.inflight[s].Pull)
	}
	return out
}

func sortedKeys[V any](m map[event.StreamID]V) []event.StreamID {
	keys := make([]event.StreamID, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
