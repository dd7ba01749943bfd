package replicate

import (
	"time"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// DefaultRelayAnnounceGap is the least time between two announces whose
// only news is relayed streams (see Config.RelayAnnounceGap).
const DefaultRelayAnnounceGap = 25 * time.Millisecond

// announceBurst is how many announces may follow each other closer than
// MinAnnounceGap, as long as on average they keep to it. Events published
// at about one per gap would otherwise wait for the gap whenever a
// scheduling delay moved an announce later than its slot.
const announceBurst = 4

// pacer decides when the next announce is due. A change of the node's own
// streams is announced as soon as the gap allows: on average one announce
// per gap (more after a large one), with bursts of up to announceBurst.
// Its events ride along and peers wait for them. A change of relayed
// streams only waits, in addition, for relayGap after the last announce:
// the origin's announce, which gossip forwards to every node, already
// carries the news and the fresh events, and the relays' own announces
// (that they hold the events too, for pulls) need not follow each event.
// Without this every node in a swarm announced every event of every
// stream, and signing those announces alone could keep a small device's
// cores busy (docs/replication.md). A heartbeat or a peer that joined is
// announced as a change of own streams.
//
// The pacer belongs to the announce loop; it does no I/O.
type Pacer struct {
	self     string
	minGap   time.Duration
	relayGap time.Duration

	last time.Time                 // when the last announce started; zero: none yet
	tat  time.Time                 // when the announces so far are paid for, at one per gap
	own  map[event.StreamID]uint64 // the own streams' offsets the last one carried
}

func NewPacer(self string, minGap, relayGap time.Duration) *Pacer {
	return &Pacer{self: self, minGap: minGap, relayGap: relayGap}
}

// Due returns when an announce of heads may start: urgent is a heartbeat
// or a peer that joined.
func (p *Pacer) Due(heads map[event.StreamID]chain.SignedHead, urgent bool) time.Time {
	if p.last.IsZero() {
		return p.last
	}
	at := p.tat.Add(-(announceBurst - 1) * p.minGap)
	if !urgent && !p.OwnChanged(heads) {
		if r := p.last.Add(p.relayGap); r.After(at) {
			at = r
		}
	}
	return at
}

// OwnChanged reports whether an own stream in heads is not at the offset
// the last announce carried.
func (p *Pacer) OwnChanged(heads map[event.StreamID]chain.SignedHead) bool {
	for s, h := range heads {
		if s.Node() != p.self {
			continue
		}
		if off, ok := p.own[s]; !ok || off != h.Offset {
			return true
		}
	}
	return false
}

// Carried reports whether the last announce carried own stream s at off.
func (p *Pacer) Carried(s event.StreamID, off uint64) bool {
	o, ok := p.own[s]
	return ok && o == off
}

// Sent records an announce of heads that started at now; overhead is its
// size without the fresh events, which stretches its gap to keep announces
// under announceBytesPerSec.
func (p *Pacer) Sent(now time.Time, heads map[event.StreamID]chain.SignedHead, overhead int) {
	gap := max(p.minGap, time.Duration(overhead)*time.Second/announceBytesPerSec)
	if p.tat.Before(now) {
		p.tat = now
	}
	p.tat = p.tat.Add(gap)
	p.last = now
	p.own = map[event.StreamID]uint64{}
	for s, h := range heads {
		if s.Node() == p.self {
			p.own[s] = h.Offset
		}
	}
}

// announceBytesPerSec is the rate of announce overhead (heads, not the
// fresh events, which would travel anyway) the announce gap aims under.
const announceBytesPerSec = 1 << 20
