// Package replicatetest holds an in-memory replicate.Store and signing
// node keys for the tests of replicate and its libp2p edge. It does not
// import replicate, so replicate's own tests can use it.
package replicatetest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/chain/chaintest"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// Origin is a node key able to write and sign its stream 0.
type Origin struct {
	Key    crypto.PrivKey
	Signer ed25519.PrivateKey // Key, in the form chain signs with
	ID     peer.ID
	Stream event.StreamID
}

// NewOrigin makes an Origin with a fresh key.
func NewOrigin(t testing.TB) Origin {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := key.Raw()
	if err != nil {
		t.Fatal(err)
	}
	return Origin{Key: key, Signer: ed25519.PrivateKey(raw), ID: id, Stream: event.NewStreamID(id.String(), 0)}
}

// Sign signs the head after events, which follow the chain hash prev.
func (o Origin) Sign(t testing.TB, prev chain.Hash, events []event.Event) chain.SignedHead {
	t.Helper()
	return chaintest.SignAfter(t, o.Signer, o.Stream, prev, events)
}

// stream is one stream held by a memStore.
type stream struct {
	events []event.Event
	hashes []chain.Hash
	heads  map[uint64]chain.SignedHead // checkpoints by offset
}

// MemStore is an in-memory replicate.Store. It holds streams from offset
// 0 (SkipTo refuses) and expires nothing. Its record blocks are CBOR
// arrays of events.
type MemStore struct {
	mu      sync.Mutex
	streams map[event.StreamID]*stream
	lamport uint64
	changed chan struct{}
	ingests int
	rules   map[event.StreamID]expiry.Retention // learnt
	decoded atomic.Int64                        // blocks DecodeBlock decoded
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{streams: map[event.StreamID]*stream{}, changed: make(chan struct{}), rules: map[event.StreamID]expiry.Retention{}}
}

// Heads implements replicate.Store.
func (m *MemStore) Heads(ctx context.Context) (map[event.StreamID]chain.SignedHead, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[event.StreamID]chain.SignedHead{}
	for s, ms := range m.streams {
		if n := len(ms.events); n > 0 {
			out[s] = ms.heads[uint64(n-1)]
		}
	}
	return out, nil
}

// ReadRange implements replicate.Store.
func (m *MemStore) ReadRange(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	return func(yield func(chain.Entry, error) bool) {
		m.mu.Lock()
		ms := m.streams[stream]
		var entries []chain.Entry
		if ms != nil {
			for off := uint64(from + 1); off <= to && off < uint64(len(ms.events)); off++ {
				en := chain.Entry{Event: ms.events[off]}
				if h, ok := ms.heads[off]; ok {
					en.Head = &h
				}
				entries = append(entries, en)
			}
		}
		m.mu.Unlock()
		for _, en := range entries {
			if err := ctx.Err(); err != nil {
				yield(chain.Entry{}, err)
				return
			}
			if !yield(en, nil) {
				return
			}
		}
	}
}

// IngestAsync stores at once (see Put); wait returns the result.
func (m *MemStore) IngestAsync(ctx context.Context, events []event.Event, _ []chain.Block, head chain.SignedHead) (func() error, error) {
	err := m.Put(events, head)
	return func() error { return err }, nil
}

// Expiry returns nothing: nothing expires in a MemStore.
func (m *MemStore) Expiry() []expiry.StreamExpiry { return nil }

// LearnRetention records the rule.
func (m *MemStore) LearnRetention(stream event.StreamID, r expiry.Retention) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rules[stream] = r
}

// SkipTo refuses: a MemStore holds its streams from offset 0.
func (m *MemStore) SkipTo(ctx context.Context, floor chain.Head) error {
	return fmt.Errorf("MemStore: cannot skip %s to %d: %w", floor.Stream, floor.Offset+1, chain.ErrStale)
}

// Put stores a range as IngestAsync does, at once, checking that it
// continues its stream (else chain.ErrStale) but not its chain.
func (m *MemStore) Put(events []event.Event, head chain.SignedHead) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.streams[head.Stream]
	if ms == nil {
		ms = &stream{heads: map[uint64]chain.SignedHead{}}
		m.streams[head.Stream] = ms
	}
	if len(events) == 0 || events[0].Offset != uint64(len(ms.events)) || events[len(events)-1].Offset != head.Offset {
		return fmt.Errorf("%w: have %d, got from %d", chain.ErrStale, len(ms.events)-1, events[0].Offset)
	}
	prev := chain.Genesis
	if n := len(ms.hashes); n > 0 {
		prev = ms.hashes[n-1]
	}
	for _, e := range events {
		prev = chain.Link(prev, &e)
		ms.events = append(ms.events, e)
		ms.hashes = append(ms.hashes, prev)
	}
	ms.heads[head.Offset] = head
	m.lamport = max(m.lamport, head.Lamport)
	m.ingests++
	close(m.changed)
	m.changed = make(chan struct{})
	return nil
}

// Changed implements replicate.Store.
func (m *MemStore) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// Publish appends n new random events to o's stream in m as one signed
// batch and returns them.
func (m *MemStore) Publish(t testing.TB, r *rand.Rand, o Origin, n int) []event.Event {
	t.Helper()
	m.mu.Lock()
	ms := m.streams[o.Stream]
	prev, first := chain.Genesis, uint64(0)
	if ms != nil && len(ms.events) > 0 {
		prev, first = ms.hashes[len(ms.hashes)-1], uint64(len(ms.events))
	}
	evs := chaintest.RandomEvents(r, o.Stream, first, m.lamport, n)
	m.mu.Unlock()
	if err := m.Put(evs, o.Sign(t, prev, evs)); err != nil {
		t.Fatal(err)
	}
	return evs
}

// Events returns a copy of stream's events in m.
func (m *MemStore) Events(s event.StreamID) []event.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ms := m.streams[s]; ms != nil {
		return slices.Clone(ms.events)
	}
	return nil
}

// Head returns m's head of s as the Head a Fetch chains from, and its
// offset (-1 if m holds none of s).
func (m *MemStore) Head(s event.StreamID) (chain.Head, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.streams[s]
	if ms == nil || len(ms.events) == 0 {
		return chain.Head{}, -1
	}
	h := ms.heads[uint64(len(ms.events)-1)]
	return h.Head, int64(h.Offset)
}

// BlockEvents is how many events a MemStore's block holds at most.
const BlockEvents = 7

// ReadBlocks yields blocks (EncodeBlock) of up to BlockEvents events, cut
// at heads like a node's, whose bytes it spoils once the reader moves on.
func (m *MemStore) ReadBlocks(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	return func(yield func(chain.Entry, error) bool) {
		var evs []event.Event
		flush := func(head *chain.SignedHead) bool {
			data, err := EncodeBlock(evs)
			if err != nil {
				yield(chain.Entry{}, err)
				return false
			}
			en := chain.Entry{Block: &chain.Block{First: evs[0].Offset, Count: len(evs), Data: data}, Head: head}
			evs = evs[:0]
			goOn := yield(en, nil)
			// Data is valid only until the iteration goes on: spoil it,
			// as a store that reuses its buffer would.
			for i := range data {
				data[i] = 0xff
			}
			return goOn
		}
		for en, err := range m.ReadRange(ctx, stream, from, to) {
			if err != nil {
				yield(en, err)
				return
			}
			evs = append(evs, en.Event)
			if (en.Head != nil || len(evs) == BlockEvents) && !flush(en.Head) {
				return
			}
		}
		if len(evs) > 0 {
			flush(nil)
		}
	}
}

// DecodeBlock decodes a block of ReadBlocks and counts it in decoded.
func (m *MemStore) DecodeBlock(dst []event.Event, stream event.StreamID, b chain.Block, budget int) ([]event.Event, error) {
	var evs []event.Event
	if err := cbor.Unmarshal(b.Data, &evs); err != nil || len(evs) == 0 {
		return dst, fmt.Errorf("%w: test block: %v", chain.ErrMalformed, err)
	}
	for i, e := range evs {
		e.Stream = stream // not trusted: the caller verifies it
		if e.Offset != b.First+uint64(i) {
			return dst, fmt.Errorf("%w: test block: offset %d at %d", chain.ErrMalformed, e.Offset, b.First+uint64(i))
		}
		if budget -= len(e.Payload); budget < 0 {
			return dst, chain.ErrTooMuchUnverified
		}
		dst = append(dst, e)
	}
	m.decoded.Add(1)
	return dst, nil
}

// EncodeBlock encodes events as a MemStore's record block.
func EncodeBlock(events []event.Event) ([]byte, error) { return cbor.Marshal(events) }

// Ingests returns how many ranges m stored.
func (m *MemStore) Ingests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ingests
}

// Decoded returns how many blocks DecodeBlock decoded.
func (m *MemStore) Decoded() int64 { return m.decoded.Load() }

// HeadAt returns the signed head m keeps at offset off of stream s.
func (m *MemStore) HeadAt(s event.StreamID, off uint64) (chain.SignedHead, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.streams[s]
	if ms == nil {
		return chain.SignedHead{}, false
	}
	h, ok := ms.heads[off]
	return h, ok
}

// Tamper alters the event m holds at offset off of s in place, as a lying
// relay would, leaving its chain hashes and heads as they were.
func (m *MemStore) Tamper(s event.StreamID, off uint64, alter func(*event.Event)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	alter(&m.streams[s].events[off])
}

// Lamport returns the highest Lamport time of the heads m stored.
func (m *MemStore) Lamport() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lamport
}
