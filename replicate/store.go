package replicate

import (
	"context"
	"iter"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// Store is what replication needs from a node's event store; package store
// implements it. Every method is safe for concurrent use.
//
// Invariant: for every stream, the store keeps a signed head (checkpoint) at
// its highest present offset. The origin signs a head for each batch of its
// own events it commits (see chain.SignHead, chain.Link); a replica stores
// received events only through IngestAsync, which always ends at a signed
// head. Keeping the heads of earlier batches too (one per stored run) lets
// peers resume a long transfer in pieces; they are optional.
type Store interface {
	// Heads returns, for every stream held here (own and relayed), the
	// signed head at its highest present offset: Offset is the stream's
	// entry of the node's OffsetMap, Hash the chain hash there. The map is
	// the caller's.
	Heads(ctx context.Context) (map[event.StreamID]chain.SignedHead, error)

	// Changed returns a channel that is closed the next time Heads changes
	// (a publish or an ingest). Call it before Heads to miss nothing.
	Changed() <-chan struct{}

	// ReadRange yields the events of stream with offsets in (from, to] that
	// are present, in offset order (from -1: from the start), each with the
	// signed head kept at its offset, or a nil Head. If from lies below the
	// stream's floor (its events there expired), the first entry has no
	// event and Floor set. It ends early, without an error, where the
	// stream's present range ends. Yielded values are the caller's.
	// Stopping the iteration releases everything it holds.
	ReadRange(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error]

	// ReadBlocks is ReadRange with the events of each entry in Block
	// rather than Event, in the store's own compact encoding, as stored
	// (PullBlocksProtocol): an entry holds consecutive events, never past a
	// signed head (Head, if set, is the head at the block's last event).
	// Unlike the rest of an entry, Block.Data is valid only until the
	// iteration goes on: the store may reuse it.
	ReadBlocks(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error]

	// DecodeBlock appends to dst the events of a block received from a
	// peer: events of stream, at offsets from b.First on, which may alias
	// b.Data (the caller leaves it unchanged). It checks form only; the
	// caller verifies the events like any others. Errors from malformed
	// input wrap chain.ErrMalformed; if the payloads would take more than
	// budget bytes, the error wraps chain.ErrTooMuchUnverified.
	DecodeBlock(dst []event.Event, stream event.StreamID, b chain.Block, budget int) ([]event.Event, error)

	// IngestAsync queues events of head.Stream, already verified by the
	// caller, to be stored in one transaction, and returns once they are
	// queued. They are consecutive, the first directly above the stream's
	// present offset (offset 0 for a new stream), the last at head.Offset;
	// head is kept as the checkpoint at head.Offset. blocks, if not nil,
	// are the blocks the events were decoded from by DecodeBlock, holding
	// exactly them in order; the store may keep their bytes rather than
	// encode the events again. Storing raises the node's Lamport clock to
	// at least head.Lamport, with the same durability as a publish.
	//
	// Ranges queued one after another (by one caller, each returned before
	// the next is queued) are stored in that order. wait blocks until the
	// range is stored or refused and must be called exactly once; if the
	// stream's present offset is not events[0].Offset-1 when the range's
	// turn comes (a range before it failed, or another ingest came first)
	// it stores nothing and returns an error wrapping chain.ErrStale. err
	// is an error of queueing (the store is closed, ctx ended, the range is
	// invalid): nothing was queued, and wait is nil. IngestAsync does not
	// modify events and may retain them.
	IngestAsync(ctx context.Context, events []event.Event, blocks []chain.Block, head chain.SignedHead) (wait func() error, err error)

	// Expiry returns the floor of every stream with expired events and the
	// rules of the node's own streams, for gossip.
	Expiry() []expiry.StreamExpiry

	// LearnRetention records the rule a stream's origin announced; the
	// store applies it to its copy.
	LearnRetention(stream event.StreamID, r expiry.Retention)

	// SkipTo makes the store continue floor.Stream after floor (the head at
	// the peer's floor-1): the peer no longer holds the events below it. A
	// store holding events of the stream below floor.Offset drops them, or
	// refuses with an error wrapping chain.ErrStale when it has no reason
	// to believe they expired. Holding floor.Offset or more, it does
	// nothing.
	SkipTo(ctx context.Context, floor chain.Head) error
}

// Ingest stores a verified range through st.IngestAsync and waits until
// it is stored.
func Ingest(ctx context.Context, st Store, events []event.Event, head chain.SignedHead) error {
	wait, err := st.IngestAsync(ctx, events, nil, head)
	if err != nil {
		return err
	}
	return wait()
}
