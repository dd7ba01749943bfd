package replicate

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// Limits bound what a decoder accepts from a peer. Zero fields take the
// values of DefaultLimits.
type Limits struct {
	// MaxAnnounceBytes bounds one gossip message.
	MaxAnnounceBytes int
	// MaxHeads bounds the heads of one Announce (streams a node announces).
	MaxHeads int
	// MaxFreshEvents bounds the events riding along in one Announce.
	MaxFreshEvents int
	// MaxFrameBytes bounds one pull frame; it must exceed the largest event.
	MaxFrameBytes int
	// FrameFillBytes is the size at which a responder closes a frame.
	FrameFillBytes int
	// MaxUnverifiedBytes bounds the events a requester buffers before a
	// signed checkpoint covers them.
	MaxUnverifiedBytes int
}

// DefaultLimits suit events of up to 256 KiB payload.
var DefaultLimits = Limits{
	MaxAnnounceBytes:   1 << 20,
	MaxHeads:           4096,
	MaxFreshEvents:     256,
	MaxFrameBytes:      1 << 20,
	FrameFillBytes:     256 << 10,
	MaxUnverifiedBytes: 64 << 20,
}

// WithDefaults returns l with zero fields set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	set := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	set(&d.MaxAnnounceBytes, l.MaxAnnounceBytes)
	set(&d.MaxHeads, l.MaxHeads)
	set(&d.MaxFreshEvents, l.MaxFreshEvents)
	set(&d.MaxFrameBytes, l.MaxFrameBytes)
	set(&d.FrameFillBytes, l.FrameFillBytes)
	set(&d.MaxUnverifiedBytes, l.MaxUnverifiedBytes)
	return d
}

// Announce is the gossip message: the heads a node can serve and, for low
// latency, recent events of its own streams.
type Announce struct {
	// Node is the sender's NodeID; receivers check it against the pubsub
	// sender.
	Node string
	// Heads holds, per stream the sender holds (own and relayed), the
	// highest signed head it can serve.
	Heads []chain.SignedHead
	// Fresh carries recent events of the sender's own streams.
	Fresh []FreshEvents
	// Expiry holds the sender's floors and, for its own streams, their
	// retention rules (see expiry.StreamExpiry).
	Expiry []expiry.StreamExpiry
}

// FreshEvents are consecutive events of one stream ending at Head.Offset.
type FreshEvents struct {
	Head   chain.SignedHead
	Events []event.Event
}

// PullRequest asks a peer for the events of Stream in (From, To]; From -1
// means from the stream's start.
type PullRequest struct {
	Stream event.StreamID
	From   int64
	To     uint64
}

// Frame is one message of a pull answer. Events continue the stream in
// offset order. Head, if set, is a signed checkpoint at an offset the
// answer has reached (in this frame or before). The last frame has End set:
// with Head covering the last event sent, or with Error.
type Frame struct {
	Events []event.Event
	// Blocks, in answers of PullBlocksProtocol, hold the events instead
	// of Events (see Store.ReadBlocks); a frame has one or the other.
	Blocks []chain.Block
	Head   *chain.SignedHead
	End    bool
	Error  string
	// Floor, only in the first frame, says the answer starts above the
	// requested From: the responder's events below Floor.Offset+1 expired,
	// and Floor is the chain head to verify the rest from.
	Floor *chain.Head
}

// On the wire. Messages are CBOR maps with small integer keys, so fields
// can be added; events and heads are arrays. Events in frames and fresh
// batches omit the stream, named by the request or the head.

type wireEvent struct {
	_         struct{} `cbor:",toarray"`
	Offset    uint64
	Lamport   uint64
	Timestamp int64
	Tags      []string
	AppID     string
	Payload   []byte
}

type wireHead struct {
	_       struct{} `cbor:",toarray"`
	Stream  string
	Offset  uint64
	Lamport uint64
	Hash    []byte
	Sig     []byte
}

type wireFresh struct {
	Head   wireHead    `cbor:"1,keyasint"`
	Events []wireEvent `cbor:"2,keyasint"`
}

type wireAnnounce struct {
	Node   string       `cbor:"1,keyasint"`
	Heads  []wireHead   `cbor:"2,keyasint,omitempty"`
	Fresh  []wireFresh  `cbor:"3,keyasint,omitempty"`
	Expiry []wireExpiry `cbor:"4,keyasint,omitempty"`
}

type wireRequest struct {
	Stream string `cbor:"1,keyasint"`
	From   int64  `cbor:"2,keyasint"`
	To     uint64 `cbor:"3,keyasint"`
}

type wireBlock struct {
	_     struct{} `cbor:",toarray"`
	First uint64
	Data  []byte
}

type wireFrame struct {
	Events []wireEvent `cbor:"1,keyasint,omitempty"`
	Blocks []wireBlock `cbor:"6,keyasint,omitempty"`
	Head   *wireHead   `cbor:"2,keyasint,omitempty"`
	End    bool        `cbor:"3,keyasint,omitempty"`
	Error  string      `cbor:"4,keyasint,omitempty"`
	Floor  *wireFloor  `cbor:"5,keyasint,omitempty"`
}

var (
	wireEnc cbor.UserBufferEncMode
	wireDec cbor.DecMode
)

func init() {
	var err error
	if wireEnc, err = cbor.CoreDetEncOptions().UserBufferEncMode(); err != nil {
		panic(err)
	}
	wireDec, err = cbor.DecOptions{
		MaxNestedLevels:  8,
		MaxArrayElements: 1 << 16,
		MaxMapPairs:      64,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// maxNodeIDLen bounds a NodeID accepted from outside.
const maxNodeIDLen = event.MaxStreamIDLen

func toWireHead(h chain.SignedHead) wireHead {
	return wireHead{Stream: string(h.Stream), Offset: h.Offset, Lamport: h.Lamport, Hash: h.Hash[:], Sig: h.Sig}
}

func fromWireHead(w *wireHead) (chain.SignedHead, error) {
	s := event.StreamID(w.Stream)
	switch {
	case !s.Valid():
		return chain.SignedHead{}, fmt.Errorf("%w: head: invalid stream id %q", chain.ErrMalformed, w.Stream)
	case len(w.Hash) != len(chain.Hash{}):
		return chain.SignedHead{}, fmt.Errorf("%w: head of %s: hash of %d bytes", chain.ErrMalformed, s, len(w.Hash))
	case len(w.Sig) == 0 || len(w.Sig) > chain.MaxSigLen:
		return chain.SignedHead{}, fmt.Errorf("%w: head of %s: signature of %d bytes", chain.ErrMalformed, s, len(w.Sig))
	}
	h := chain.SignedHead{Head: chain.Head{Stream: s, Offset: w.Offset, Lamport: w.Lamport}, Sig: w.Sig}
	copy(h.Hash[:], w.Hash)
	return h, nil
}

func toWireEvents(events []event.Event) []wireEvent {
	out := make([]wireEvent, len(events))
	for i := range events {
		e := &events[i]
		out[i] = wireEvent{Offset: e.Offset, Lamport: e.Lamport, Timestamp: e.Timestamp, Tags: e.Tags, AppID: e.AppID, Payload: e.Payload}
	}
	return out
}

func fromWireEvents(stream event.StreamID, ws []wireEvent) []event.Event {
	if len(ws) == 0 {
		return nil
	}
	out := make([]event.Event, len(ws))
	for i := range ws {
		w := &ws[i]
		out[i] = event.Event{Stream: stream, Offset: w.Offset, Lamport: w.Lamport, Timestamp: w.Timestamp, Tags: w.Tags, AppID: w.AppID, Payload: w.Payload}
	}
	return out
}

// EncodeAnnounce encodes a for gossip. It fails if a breaks lim.
func EncodeAnnounce(a Announce, lim Limits) ([]byte, error) {
	lim = lim.WithDefaults()
	w := wireAnnounce{Node: a.Node, Heads: make([]wireHead, len(a.Heads)), Expiry: toWireExpiry(a.Expiry)}
	for i, h := range a.Heads {
		w.Heads[i] = toWireHead(h)
	}
	fresh := 0
	for _, f := range a.Fresh {
		w.Fresh = append(w.Fresh, wireFresh{Head: toWireHead(f.Head), Events: toWireEvents(f.Events)})
		fresh += len(f.Events)
	}
	if len(a.Heads) > lim.MaxHeads || fresh > lim.MaxFreshEvents {
		return nil, fmt.Errorf("encode announce: %d heads and %d fresh events, limits %d and %d", len(a.Heads), fresh, lim.MaxHeads, lim.MaxFreshEvents)
	}
	b, err := wireEnc.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode announce: %w", err)
	}
	if len(b) > lim.MaxAnnounceBytes {
		return nil, fmt.Errorf("encode announce: %d bytes, limit %d", len(b), lim.MaxAnnounceBytes)
	}
	return b, nil
}

// DecodeAnnounce decodes a gossip message, enforcing lim. It checks form
// only; heads and fresh events still need verifying. Errors wrap
// ErrMalformed.
func DecodeAnnounce(data []byte, lim Limits) (Announce, error) {
	lim = lim.WithDefaults()
	if len(data) > lim.MaxAnnounceBytes {
		return Announce{}, fmt.Errorf("%w: announce of %d bytes, limit %d", chain.ErrMalformed, len(data), lim.MaxAnnounceBytes)
	}
	var w wireAnnounce
	if err := wireDec.Unmarshal(data, &w); err != nil {
		return Announce{}, fmt.Errorf("%w: announce: %v", chain.ErrMalformed, err)
	}
	if w.Node == "" || len(w.Node) > maxNodeIDLen {
		return Announce{}, fmt.Errorf("%w: announce: node id of %d bytes", chain.ErrMalformed, len(w.Node))
	}
	if len(w.Heads) > lim.MaxHeads {
		return Announce{}, fmt.Errorf("%w: announce: %d heads, limit %d", chain.ErrMalformed, len(w.Heads), lim.MaxHeads)
	}
	a := Announce{Node: w.Node, Heads: make([]chain.SignedHead, len(w.Heads))}
	var err error
	if a.Expiry, err = fromWireExpiry(w.Expiry, lim.MaxHeads); err != nil {
		return Announce{}, err
	}
	for i := range w.Heads {
		h, err := fromWireHead(&w.Heads[i])
		if err != nil {
			return Announce{}, err
		}
		a.Heads[i] = h
	}
	fresh := 0
	for i := range w.Fresh {
		f := &w.Fresh[i]
		if fresh += len(f.Events); fresh > lim.MaxFreshEvents {
			return Announce{}, fmt.Errorf("%w: announce: more than %d fresh events", chain.ErrMalformed, lim.MaxFreshEvents)
		}
		h, err := fromWireHead(&f.Head)
		if err != nil {
			return Announce{}, err
		}
		if len(f.Events) == 0 {
			return Announce{}, fmt.Errorf("%w: announce: fresh batch of %s without events", chain.ErrMalformed, h.Stream)
		}
		a.Fresh = append(a.Fresh, FreshEvents{Head: h, Events: fromWireEvents(h.Stream, f.Events)})
	}
	return a, nil
}
