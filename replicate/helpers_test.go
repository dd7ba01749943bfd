package replicate

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

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/chain/chaintest"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// origin is a node key able to write and sign its stream 0.
type origin struct {
	key    crypto.PrivKey
	signer ed25519.PrivateKey // key, in the form chain signs with
	id     peer.ID
	stream event.StreamID
}

func newOrigin(t testing.TB) origin {
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
	return origin{key: key, signer: ed25519.PrivateKey(raw), id: id, stream: event.NewStreamID(id.String(), 0)}
}

// randomEvents makes n events of stream from offset first, Lamport times
// increasing above lamport.
var randomEvents = chaintest.RandomEvents

func (o origin) sign(t testing.TB, prev chain.Hash, events []event.Event) chain.SignedHead {
	t.Helper()
	last := events[len(events)-1]
	sh, err := chain.SignHead(o.signer, chain.Head{Stream: o.stream, Offset: last.Offset, Lamport: last.Lamport, Hash: chain.LinkAll(prev, events)})
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// memStream is one stream held by a memStore.
type memStream struct {
	events []event.Event
	hashes []chain.Hash
	heads  map[uint64]chain.SignedHead // checkpoints by offset
}

// memStore is an in-memory Store for tests.
type memStore struct {
	mu      sync.Mutex
	streams map[event.StreamID]*memStream
	lamport uint64
	changed chan struct{}
	ingests int
	rules   map[event.StreamID]expiry.Retention // learnt
	decoded atomic.Int64                        // blocks DecodeBlock decoded
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{streams: map[event.StreamID]*memStream{}, changed: make(chan struct{}), rules: map[event.StreamID]expiry.Retention{}}
}

func (m *memStore) Heads(ctx context.Context) (map[event.StreamID]chain.SignedHead, error) {
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

func (m *memStore) ReadRange(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
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

// IngestAsync stores at once; wait returns the result.
func (m *memStore) IngestAsync(ctx context.Context, events []event.Event, _ []chain.Block, head chain.SignedHead) (func() error, error) {
	err := m.ingest(events, head)
	return func() error { return err }, nil
}

// Expiry: nothing expires in a memStore.
func (m *memStore) Expiry() []expiry.StreamExpiry { return nil }

// LearnRetention records the rule.
func (m *memStore) LearnRetention(stream event.StreamID, r expiry.Retention) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rules[stream] = r
}

// SkipTo refuses: a memStore holds its streams from offset 0.
func (m *memStore) SkipTo(ctx context.Context, floor chain.Head) error {
	return fmt.Errorf("memStore: cannot skip %s to %d: %w", floor.Stream, floor.Offset+1, chain.ErrStale)
}

func (m *memStore) ingest(events []event.Event, head chain.SignedHead) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.streams[head.Stream]
	if ms == nil {
		ms = &memStream{heads: map[uint64]chain.SignedHead{}}
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

func (m *memStore) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// publish appends n new events to o's stream in m as one signed batch.
func (m *memStore) publish(t testing.TB, r *rand.Rand, o origin, n int) []event.Event {
	t.Helper()
	m.mu.Lock()
	ms := m.streams[o.stream]
	prev, first := chain.Genesis, uint64(0)
	if ms != nil && len(ms.events) > 0 {
		prev, first = ms.hashes[len(ms.hashes)-1], uint64(len(ms.events))
	}
	evs := randomEvents(r, o.stream, first, m.lamport, n)
	m.mu.Unlock()
	if err := m.ingest(evs, o.sign(t, prev, evs)); err != nil {
		t.Fatal(err)
	}
	return evs
}

// events returns a copy of stream's events in m.
func (m *memStore) events(s event.StreamID) []event.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ms := m.streams[s]; ms != nil {
		return slices.Clone(ms.events)
	}
	return nil
}

// head returns m's head of s as the Head a Fetch chains from, and its offset.
func (m *memStore) head(s event.StreamID) (chain.Head, int64) {
	hs, _ := m.Heads(context.Background())
	h, ok := hs[s]
	if !ok {
		return chain.Head{}, -1
	}
	return h.Head, int64(h.Offset)
}

// blockEvents is how many events a memStore's block holds at most.
const blockEvents = 7

// ReadBlocks yields blocks that are CBOR arrays of wire events, up to
// blockEvents of them, cut at heads like a node's, whose bytes it spoils
// once the reader moves on.

func (m *memStore) ReadBlocks(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	return func(yield func(chain.Entry, error) bool) {
		var evs []event.Event
		flush := func(head *chain.SignedHead) bool {
			data, err := wireEnc.Marshal(toWireEvents(evs))
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
			if (en.Head != nil || len(evs) == blockEvents) && !flush(en.Head) {
				return
			}
		}
		if len(evs) > 0 {
			flush(nil)
		}
	}
}

// DecodeBlock decodes a block of ReadBlocks and counts it in decoded.
func (m *memStore) DecodeBlock(dst []event.Event, stream event.StreamID, b chain.Block, budget int) ([]event.Event, error) {
	var ws []wireEvent
	if err := wireDec.Unmarshal(b.Data, &ws); err != nil || len(ws) == 0 {
		return dst, fmt.Errorf("%w: test block: %v", chain.ErrMalformed, err)
	}
	for i, e := range fromWireEvents(stream, ws) {
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
