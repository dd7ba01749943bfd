// Package liar is a replicate.Store that lies, for tests of how honest
// nodes treat a peer that misbehaves: it serves other nodes' streams
// altered, with broken signatures, cut short, without end, or not at all,
// while its announces (made from its real heads) verify. Its own stream is
// served honestly. Tests in-process (node) and at the process level
// (cmd/edgelog's lying-peer test) share it.
package liar

import (
	"context"
	"errors"
	"iter"
	"slices"
	"sync/atomic"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/replicate"
)

// Mode is how a Store lies about other nodes' streams.
type Mode string

// The modes.
const (
	// Honest serves everything as stored.
	Honest Mode = "honest"
	// Payload alters the last payload byte of every event or block.
	Payload Mode = "payload"
	// Signature breaks the signature of every head it sends.
	Signature Mode = "signature"
	// Withhold announces offsets it then does not serve (an empty answer).
	Withhold Mode = "withhold"
	// Truncate serves the first entry of a read, then fails, which cuts
	// the transfer mid-stream (the peer resets the pull stream).
	Truncate Mode = "truncate"
	// Endless serves the range's entries, then the same events again
	// under higher offsets, without a head, until the reader gives up.
	Endless Mode = "endless"
)

// Modes lists the lying modes (all but Honest).
var Modes = []Mode{Payload, Signature, Withhold, Truncate, Endless}

// ErrCut is the error a Truncate read ends with.
var ErrCut = errors.New("liar: transfer cut")

// Store wraps a replicate.Store. Its mode may change while it serves; a
// Rotate store takes the next of Modes at every read.
type Store struct {
	replicate.Store
	// Self is the liar's own NodeID: its own stream is served honestly.
	Self string
	// Reads counts the reads of other nodes' streams it served, and
	// BlockReads those of them in blocks (ReadBlocks).
	Reads, BlockReads atomic.Int64
	mode              atomic.Value // Mode
	rotate            atomic.Bool
}

// New returns a Store over s for the node self, lying in mode.
func New(s replicate.Store, self string, mode Mode) *Store {
	l := &Store{Store: s, Self: self}
	l.SetMode(mode)
	return l
}

// SetMode sets how the store lies from the next read on.
func (l *Store) SetMode(m Mode) { l.rotate.Store(false); l.mode.Store(m) }

// Rotate makes every read lie in the next of Modes.
func (l *Store) Rotate() { l.rotate.Store(true) }

// next returns the mode of a new read of another node's stream.
func (l *Store) next() Mode {
	n := l.Reads.Add(1)
	if l.rotate.Load() {
		return Modes[int(n)%len(Modes)]
	}
	return l.mode.Load().(Mode)
}

// ReadRange implements replicate.Store, lying as the mode says.
func (l *Store) ReadRange(ctx context.Context, s event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	if s.Node() == l.Self {
		return l.Store.ReadRange(ctx, s, from, to)
	}
	return l.lying(l.next(), l.Store.ReadRange(ctx, s, from, to))
}

// ReadBlocks implements replicate.Store, lying as ReadRange does.
func (l *Store) ReadBlocks(ctx context.Context, s event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	if s.Node() == l.Self {
		return l.Store.ReadBlocks(ctx, s, from, to)
	}
	l.BlockReads.Add(1)
	return l.lying(l.next(), l.Store.ReadBlocks(ctx, s, from, to))
}

func (l *Store) lying(mode Mode, read iter.Seq2[chain.Entry, error]) iter.Seq2[chain.Entry, error] {
	return func(yield func(chain.Entry, error) bool) {
		switch mode {
		case Honest:
			read(yield)
			return
		case Withhold:
			return
		}
		var seen []chain.Entry
		for en, err := range read {
			if err == nil && mode == Truncate && len(seen) > 0 {
				yield(chain.Entry{}, ErrCut)
				return
			}
			if err == nil {
				seen = append(seen, clone(en))
			}
			if !yield(alter(mode, en, err)) {
				return
			}
		}
		if mode == Truncate && len(seen) > 0 {
			yield(chain.Entry{}, ErrCut)
			return
		}
		if mode != Endless || len(seen) == 0 {
			return
		}
		next := lastOffset(seen[len(seen)-1]) + 1
		for {
			for _, en := range seen {
				en = clone(en)
				en.Head = nil
				if en.Block != nil {
					en.Block.First = next
					next += uint64(en.Block.Count)
				} else {
					en.Event.Offset = next
					next++
				}
				if !yield(en, nil) {
					return
				}
			}
		}
	}
}

func lastOffset(en chain.Entry) uint64 {
	if en.Block != nil {
		return en.Block.Last()
	}
	return en.Event.Offset
}

// clone copies what the store may reuse (block data) or alter.
func clone(en chain.Entry) chain.Entry {
	if en.Block != nil {
		b := *en.Block
		b.Data = slices.Clone(b.Data)
		en.Block = &b
	}
	en.Event.Payload = slices.Clone(en.Event.Payload)
	return en
}

// alter changes en as mode says: its payload (the last byte of a block is
// its last event's payload's) or its head's signature.
func alter(mode Mode, en chain.Entry, err error) (chain.Entry, error) {
	if err != nil {
		return en, err
	}
	switch {
	case mode == Payload && en.Block != nil:
		en = clone(en)
		en.Block.Data[len(en.Block.Data)-1] ^= 0x01
	case mode == Payload && en.Floor == nil:
		en.Event.Payload = append(slices.Clone(en.Event.Payload), 0xf6)
	case mode == Signature && en.Head != nil:
		h := *en.Head
		h.Sig = slices.Clone(h.Sig)
		h.Sig[len(h.Sig)/2] ^= 0x40
		en.Head = &h
	}
	return en, err
}
