package replicate

import (
	"context"
	"iter"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// Store is what replication needs from a node's event store. The node
// implements it; every method is safe for concurrent use.
//
// Invariant: for every stream, the store keeps a signed head (checkpoint) at
// its highest present offset. The origin signs a head for each batch of its
// own events it commits (see chain.SignHead, chain.Link); a replica stores received
// events only through Ingest, which always ends at a signed head. Keeping
// the heads of earlier batches too (one per stored run) lets peers resume a
// long transfer in pieces; they are optional.
type Store interface {
	// Heads returns, for every stream held here (own and relayed), the
	// signed head at its highest present offset: Offset is the stream's
	// entry of the node's OffsetMap, Hash the chain hash there. The map is
	// the caller's.
	Heads(ctx context.Context) (map[event.StreamID]chain.SignedHead, error)

	// ReadRange yields the events of stream with offsets in (from, to] that
	// are present, in offset order (from -1: from the start), each with the
	// signed head kept at its offset, or a nil Head. It ends early, without
	// an error, where the stream's present range ends. Yielded values are the
	// caller's. Stopping the iteration releases everything it holds.
	ReadRange(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error]

	// Ingest stores events of head.Stream, already verified by the caller,
	// in one transaction: they are consecutive, the first directly above the
	// stream's present offset (offset 0 for a new stream), the last at
	// head.Offset; head is kept as the checkpoint at head.Offset. It raises
	// the node's Lamport clock to at least head.Lamport, with the same
	// durability as a publish. If the stream's present offset is not
	// events[0].Offset-1 it stores nothing and returns an error wrapping
	// ErrStale. Ingest does not modify events and may retain them.
	Ingest(ctx context.Context, events []event.Event, head chain.SignedHead) error

	// Changed returns a channel that is closed the next time Heads changes
	// (a publish or an Ingest). Call it before Heads to miss nothing.
	Changed() <-chan struct{}
}

// BlockStore is a Store that also serves and takes its events as record
// blocks: consecutive events of one stream in the store's own compact
// encoding, sent as they are stored. Two nodes whose stores are
// BlockStores pull with PullBlocksProtocol, which spares the serving node
// decoding events and encoding frames, and the pulling node decoding CBOR.
// The encoding is the store's; a block received is decoded back into
// events and verified like any other before it is stored.
type BlockStore interface {
	Store

	// ReadBlocks is ReadRange with the events of each entry in Block
	// rather than Event: an entry holds consecutive events, never past
	// a signed head (Head, if set, is the head at the block's last event).
	// Unlike the rest of an entry, Block.Data is valid only until the
	// iteration goes on: the store may reuse it.
	ReadBlocks(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error]

	// DecodeBlock appends to dst the events of a block received from a
	// peer: events of stream, at offsets from b.First on, which may alias
	// b.Data (the caller leaves it unchanged). It checks form only. Errors
	// from malformed input wrap ErrMalformed; if the payloads would take
	// more than budget bytes, the error wraps ErrTooMuchUnverified.
	DecodeBlock(dst []event.Event, stream event.StreamID, b chain.Block, budget int) ([]event.Event, error)
}
