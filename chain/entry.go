package chain

import "github.com/edgelog/edgelog/event"

// Entry is one event read from a store with the signed head the store keeps
// at its offset, if any.
type Entry struct {
	Event event.Event
	// Block, if set, replaces Event (a store's ReadBlocks); Head is then
	// the head at its last event.
	Block *Block
	Head  *SignedHead
	// Floor, if set, makes this an entry without an event: a read yields
	// it first when it starts below the stream's floor (expired events).
	// It is the chain head at floor-1; the events that follow start at the
	// floor.
	Floor *Head
}

// Block is a record block: the events of one stream at offsets First,
// First+1, ..., in a store's own compact encoding, sent as stored.
type Block struct {
	First uint64
	// Count is how many events Data holds. The reading store sets it; it
	// is not sent (the receiver learns it from decoding).
	Count int
	Data  []byte
}

// Last returns the offset of b's last event.
func (b *Block) Last() uint64 { return b.First + uint64(b.Count) - 1 }
