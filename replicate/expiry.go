package replicate

import (
	"fmt"
	"time"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// Expiry in replication. A stream's floor is its lowest offset a node still
// holds; everything below expired there. Nodes gossip their floors (and
// origins their streams' retention rules) next to their heads, so peers
// never ask for ranges below a floor; a pull from below the floor is
// answered from the floor on, with the chain head at floor-1 as the
// starting point of verification.
//
// That head need not be signed: the events after it are verified backwards
// from a signed head, so a peer cannot forge or drop events in the middle.
// It can only claim that older events expired, and a requester holding
// such events accepts that only for streams whose origin announced a
// retention rule (Store.SkipTo).

// wireExpiry is expiry.StreamExpiry on the wire (announce key 4).
type wireExpiry struct {
	_         struct{} `cbor:",toarray"`
	Stream    string
	Floor     uint64
	HasRule   bool
	MaxEvents uint64
	MaxBytes  int64
	MaxAgeSec int64
}

func toWireExpiry(xs []expiry.StreamExpiry) []wireExpiry {
	out := make([]wireExpiry, len(xs))
	for i, x := range xs {
		out[i] = wireExpiry{Stream: string(x.Stream), Floor: x.Floor, HasRule: x.HasRetention,
			MaxEvents: x.Retention.MaxEvents, MaxBytes: x.Retention.MaxBytes, MaxAgeSec: int64(x.Retention.MaxAge / time.Second)}
	}
	return out
}

func fromWireExpiry(ws []wireExpiry, max int) ([]expiry.StreamExpiry, error) {
	if len(ws) > max {
		return nil, fmt.Errorf("%w: announce: %d stream floors, limit %d", chain.ErrMalformed, len(ws), max)
	}
	var out []expiry.StreamExpiry
	for _, w := range ws {
		s := event.StreamID(w.Stream)
		if !s.Valid() {
			return nil, fmt.Errorf("%w: announce: floor of invalid stream id %q", chain.ErrMalformed, w.Stream)
		}
		x := expiry.StreamExpiry{Stream: s, Floor: w.Floor, HasRetention: w.HasRule}
		if w.HasRule {
			if w.MaxBytes < 0 || w.MaxAgeSec < 0 || w.MaxAgeSec > int64((1<<63-1)/time.Second) {
				return nil, fmt.Errorf("%w: announce: retention of %s out of range", chain.ErrMalformed, s)
			}
			x.Retention = expiry.Retention{MaxEvents: w.MaxEvents, MaxBytes: w.MaxBytes, MaxAge: time.Duration(w.MaxAgeSec) * time.Second}
		}
		out = append(out, x)
	}
	return out, nil
}

// wireFloor is the head at a floor-1 in the first frame of a pull answer
// (frame key 5); the stream is the request's.
type wireFloor struct {
	_       struct{} `cbor:",toarray"`
	Offset  uint64
	Lamport uint64
	Hash    []byte
}

func toWireFloor(h *chain.Head) *wireFloor {
	if h == nil {
		return nil
	}
	return &wireFloor{Offset: h.Offset, Lamport: h.Lamport, Hash: h.Hash[:]}
}

func fromWireFloor(stream event.StreamID, w *wireFloor) (*chain.Head, error) {
	if w == nil {
		return nil, nil
	}
	if len(w.Hash) != len(chain.Hash{}) {
		return nil, fmt.Errorf("%w: floor of %s: hash of %d bytes", chain.ErrMalformed, stream, len(w.Hash))
	}
	h := &chain.Head{Stream: stream, Offset: w.Offset, Lamport: w.Lamport}
	copy(h.Hash[:], w.Hash)
	return h, nil
}

// PeerFloors records floors a peer announced: the planner asks it for
// nothing below them. Floors only rise.
func (p *Planner) PeerFloors(id PeerID, xs []expiry.StreamExpiry) {
	if p.floors == nil {
		p.floors = map[PeerID]map[event.StreamID]uint64{}
	}
	m := p.floors[id]
	for _, x := range xs {
		if x.Floor == 0 || x.Floor <= m[x.Stream] {
			continue
		}
		if m == nil {
			m = map[event.StreamID]uint64{}
			p.floors[id] = m
		}
		m[x.Stream] = x.Floor
	}
}

// floorOf returns the floor peer id announced for stream (0 for none).
func (p *Planner) floorOf(id PeerID, s event.StreamID) uint64 { return p.floors[id][s] }

// lowestFloor returns the lowest floor of stream among the peers that
// announced it: events from there on exist somewhere.
func (p *Planner) lowestFloor(s event.StreamID) uint64 {
	var low uint64
	found := false
	for id := range p.holders[s] {
		if f := p.floorOf(id, s); !found || f < low {
			low, found = f, true
		}
	}
	return low
}
