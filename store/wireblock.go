package store

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// Record blocks on the wire (replicate.PullBlocksProtocol) are the blocks
// of block.go as stored, cut to the range asked for: a peer sends them
// without decoding a record, and this side decodes each into an event,
// which the replicate package verifies against the origin's signed chain
// like any other. Nothing here is trusted: a block is checked as strictly
// as a CBOR frame, and a compressed payload is decoded only up to the size
// its header declares and the caller's budget allows.

// DecodeBlock decodes a block received from a peer (see
// replicate.Store.DecodeBlock); budget bounds the decoded payload bytes. Payloads
// may alias b.Data.
func (n *Store) DecodeBlock(dst []event.Event, stream event.StreamID, b chain.Block, budget int) ([]event.Event, error) {
	return decodeWireBlock(dst, stream, b, budget)
}

// decodeWireBlock is DecodeBlock.
func decodeWireBlock(dst []event.Event, stream event.StreamID, b chain.Block, budget int) ([]event.Event, error) {
	recs, err := decodeBlock(b.Data, nil)
	if err != nil {
		return dst, fmt.Errorf("%w: %v", chain.ErrMalformed, err)
	}
	if b.First+uint64(len(recs)-1) < b.First {
		return dst, fmt.Errorf("%w: block at %d holds %d events, past the largest offset", chain.ErrMalformed, b.First, len(recs))
	}
	for i, rc := range recs {
		r, flags, rest, err := decodeHeader(rc)
		if err != nil {
			return dst, fmt.Errorf("%w: event %d: %v", chain.ErrMalformed, b.First+uint64(i), err)
		}
		payload, err := decodeWirePayload(flags, rest, budget)
		if err != nil {
			return dst, fmt.Errorf("event %d: %w", b.First+uint64(i), err)
		}
		budget -= len(payload)
		dst = append(dst, event.Event{Stream: stream, Offset: b.First + uint64(i), Lamport: rc.lamport,
			Timestamp: r.timestamp, Tags: r.tags, AppID: r.appID, Payload: payload})
	}
	return dst, nil
}

// decodeWirePayload returns the payload in rest, which a peer sent, if it
// decodes to at most budget bytes: rest itself if it is not compressed.
func decodeWirePayload(flags byte, rest []byte, budget int) ([]byte, error) {
	switch flags {
	case 0:
		if len(rest) > budget {
			return nil, fmt.Errorf("%w: payload of %d bytes", chain.ErrTooMuchUnverified, len(rest))
		}
		return rest[:len(rest):len(rest)], nil
	case flagZstd:
	default:
		return nil, fmt.Errorf("%w: record flags %#x", chain.ErrMalformed, flags)
	}
	// A compressed payload says how large it is (packPayload writes whole
	// frames, which carry their size); it decodes into exactly that.
	var h zstd.Header
	if err := h.Decode(rest); err != nil || !h.HasFCS {
		return nil, fmt.Errorf("%w: compressed payload without its size", chain.ErrMalformed)
	}
	if h.FrameContentSize > uint64(budget) {
		return nil, fmt.Errorf("%w: payload of %d bytes", chain.ErrTooMuchUnverified, h.FrameContentSize)
	}
	p, err := wireZstd().DecodeAll(rest, make([]byte, 0, h.FrameContentSize))
	if err != nil || uint64(len(p)) != h.FrameContentSize {
		return nil, fmt.Errorf("%w: compressed payload: %v", chain.ErrMalformed, err)
	}
	return p, nil
}

// wireZstd returns a decoder that writes no more than its output slice's
// capacity.
var wireZstd = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		panic(err)
	}
	return d
})
